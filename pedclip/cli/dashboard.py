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
    ) -> None:
        """Open the dashboard (runs, metrics, errors, neighbors, prompt lab, embedding map, data)."""
        from pedclip.dashboard.launch import launch

        paths = Paths.at(home or state(ctx).home)
        typer.echo(f"pedclip dashboard on http://{host}:{port} for {paths.home} (Ctrl-C stops it)", err=True)
        launch(paths, port, host, runtime)
