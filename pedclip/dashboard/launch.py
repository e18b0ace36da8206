"""Start the dashboard: `streamlit run app.py` headless, usage stats off, bound to localhost by default.

Kept apart from the pages so the CLI can start it without importing streamlit itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pedclip.config import HOME_ENV, RUNTIME_ENV, Paths
from pedclip.dashboard.door import READ_ONLY_ENV, TOKEN_ENV
from pedclip.dashboard.thumbs import MAX_UPLOAD_BYTES
from pedclip.errors import PedclipError, require

APP = Path(__file__).resolve().with_name("app.py")


def streamlit_command(port: int, host: str) -> list[str]:
    """The `streamlit run` argv: headless, no usage stats, no file watcher, no static serving, upload cap."""
    if not 0 < port < 65536:
        raise PedclipError(f"port {port} is out of range; pass --port between 1 and 65535")
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--server.enableStaticServing",
        "false",
        "--server.maxUploadSize",
        str(max(1, MAX_UPLOAD_BYTES // 2**20)),
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


def dashboard_env(
    paths: Paths, runtime: str = "auto", token: str | None = None, read_only: bool = False
) -> dict[str, str]:
    """The environment the app runs in: this PEDCLIP_HOME, the encoders' runtime, the door's token and
    read-only flag (in the environment, not argv, so `ps` does not show the token), streamlit's telemetry off."""
    env = {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, READ_ONLY_ENV)}
    env.update(
        {HOME_ENV: str(paths.home), RUNTIME_ENV: runtime, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    )
    if token:
        env[TOKEN_ENV] = token
    if read_only:
        env[READ_ONLY_ENV] = "1"
    return env


def launch(
    paths: Paths,
    port: int = 8501,
    host: str = "127.0.0.1",
    runtime: str = "auto",
    token: str | None = None,
    read_only: bool = False,
) -> None:
    """Replace this process with the streamlit server (so Ctrl-C and signals reach it directly)."""
    require("streamlit", "dashboard")
    require("plotly", "dashboard")
    command = streamlit_command(port, host)
    os.execve(command[0], command, dashboard_env(paths, runtime, token, read_only))
