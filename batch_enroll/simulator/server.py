"""Run the simulator over real HTTP with uvicorn: in a background thread, or blocking for the CLI.

A real socket matters: the client's timeouts, connection pool, keep-alive and dropped
connections are only exercised against a real server. uvicorn with httptools (and uvloop when
installed) keeps the server side fast enough that benchmarks measure the client, not it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any, Final

import uvicorn

from batch_enroll.simulator.app import SimulatedDrop

__all__ = ["DEFAULT_PORT", "SimulatorServer", "serve"]

DEFAULT_PORT: Final = 8365
_START_TIMEOUT_S: Final = 10.0


class _HideSimulatedDrops(logging.Filter):
    """Keep uvicorn from printing a traceback for each connection cut on purpose.

    That is every ``SimulatedDrop``, and the requests cancelled by ``stop(abort=True)``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info
        return not (exc and isinstance(exc[1], SimulatedDrop | asyncio.CancelledError))


_DROP_FILTER: Final = _HideSimulatedDrops()


def _uvicorn_config(app: Any, *, host: str, port: int, embedded: bool) -> uvicorn.Config:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        loop="auto",  # uvloop when installed, else asyncio
        ws="none",
        lifespan="off",
        interface="asgi3",
        access_log=False,
        log_level="warning",
        # Embedded in tests, leave the host program's logging setup alone.
        log_config=None if embedded else uvicorn.config.LOGGING_CONFIG,
        # A stop must not hang on a client that keeps a connection open.
        timeout_graceful_shutdown=2,
    )
    logging.getLogger("uvicorn.error").addFilter(_DROP_FILTER)
    return config


def serve(app: Any, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    """Serve the app until interrupted (Ctrl+C); used by ``batch-enroll simulate``."""
    uvicorn.Server(_uvicorn_config(app, host=host, port=port, embedded=False)).run()


class SimulatorServer:
    """Run the app under uvicorn in a daemon thread, on a port known before it starts.

    Use as a context manager, or call ``start()``/``stop()``; after ``stop()`` a new
    ``start()`` serves the same app (so the same enrollments and counters) on the same port,
    which is how a test restarts the server in the middle of a run.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self._sock: socket.socket | None = _bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None

    @property
    def base_url(self) -> str:
        """Return the root URL, e.g. ``http://127.0.0.1:54321``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Tell whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> SimulatorServer:
        """Start serving and return once the port accepts connections."""
        if self.running:
            raise RuntimeError("the simulator server is already running")
        sock = self._sock if self._sock is not None else _bind(self.host, self.port)
        self._sock = None  # uvicorn owns and closes it from here on
        config = _uvicorn_config(self.app, host=self.host, port=self.port, embedded=True)
        server = uvicorn.Server(config)
        self._server = server
        self._failure = None
        self._thread = threading.Thread(
            target=self._run,
            args=(server, config, sock),
            name=f"lms365-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the simulator did not start on {self.base_url}") from (
                    self._failure
                )
            time.sleep(0.005)
        _wait_accepting(self.host, self.port, deadline=deadline)
        return self

    def stop(self, *, abort: bool = False) -> None:
        """Stop serving; ``abort=True`` cuts open connections at once, like a crash."""
        server, thread, loop = self._server, self._thread, self._loop
        if server is not None and thread is not None:
            if abort:
                server.force_exit = True
                if loop is not None and not loop.is_closed():
                    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                        loop.call_soon_threadsafe(_abort_connections, server)
            server.should_exit = True
            thread.join(timeout=_START_TIMEOUT_S)
            if thread.is_alive():
                raise RuntimeError("the simulator server did not stop in time")
        self._server = self._thread = self._loop = None
        # A server made but never started still holds its pre-bound socket.
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _run(self, server: uvicorn.Server, config: uvicorn.Config, sock: socket.socket) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        try:
            with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
                runner.run(main())
        except BaseException as exc:  # surfaced by start(); a thread has nowhere else to put it
            self._failure = exc
        finally:
            sock.close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SimulatorServer {self.base_url} {state}>"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # Rebinding the same port right after a stop must not wait out TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _wait_accepting(host: str, port: int, *, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _abort_connections(server: uvicorn.Server) -> None:
    for connection in list(server.server_state.connections):
        # uvloop's transports are not asyncio.Transport subclasses, but they have abort().
        abort = getattr(getattr(connection, "transport", None), "abort", None)
        if callable(abort):
            abort()
