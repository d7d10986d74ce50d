"""Serve an app over HTTPS with a throwaway certificate for 127.0.0.1."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate and key for 127.0.0.1; return their paths."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            shutil.which("openssl") or "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextlib.contextmanager
def serve_tls(app: Any, folder: Path) -> Iterator[tuple[int, Path]]:
    """Serve ``app`` over HTTPS on 127.0.0.1; yield its port and the certificate to trust."""
    cert, key = make_certificate(folder)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        lifespan="off",
        log_config=None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    try:
        while not server.started:
            assert time.monotonic() < deadline, "the TLS server did not start"
            time.sleep(0.02)
        yield port, cert
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
