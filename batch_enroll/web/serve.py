"""Serve the web app under uvicorn, blocking until Ctrl+C."""

from __future__ import annotations

import importlib.util
from typing import Any

import uvicorn

__all__ = ["run_server"]


def run_server(app: Any, *, host: str, port: int) -> None:
    """Serve until interrupted; the app's shutdown stops live runs and writes their journal."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        ws="none",
        lifespan="on",
        # The access log shows paths only: no key ever travels in a URL.
        access_log=True,
        log_level="info",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()
