"""`pedclip dashboard`: serve the Streamlit dashboard on the store."""

from __future__ import annotations

import typer

from pedclip.cli.common import state
from pedclip.cli.options import Runtime
from pedclip.config import Paths


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    def dashboard(
        ctx: typer.Context,
        home: str = typer.Option(
            None, "--home", help="the store's working directory (default: the global --home)"
        ),
        port: int = typer.Option(8501, "--port", help="port to serve on"),
        host: str = typer.Option(
            "127.0.0.1", "--host", help="address to bind; 0.0.0.0 exposes it to the network"
        ),
        runtime: Runtime = "auto",
        token: str = typer.Option(
            None, "--token", help="access token (required off loopback; generated and printed when omitted)"
        ),
        read_only: bool = typer.Option(
            False, "--read-only", help="browse only: no saved runs, no cached prompts, no uploads"
        ),
    ) -> None:
        """Open the dashboard (runs, metrics, errors, neighbors, prompt lab, embedding map, data)."""
        from pedclip.dashboard.door import door_token
        from pedclip.dashboard.launch import launch
        from pedclip.store import Store

        paths = Paths.at(home or state(ctx).home)
        if paths.db.exists():  # the pages never migrate: an older store is brought up to date here, once
            Store.open(paths.home, create=False)
        needed = door_token(host, token)
        url = f"http://{host}:{port}/" + (f"?token={needed}" if needed else "")
        mode = ", read-only" if read_only else ""
        typer.echo(f"pedclip dashboard on {url} for {paths.home}{mode} (Ctrl-C stops it)", err=True)
        launch(paths, port, host, runtime, needed, read_only)
