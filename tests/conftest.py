"""Shared pytest fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_enroll.simulator import Catalog, Simulator, SimulatorServer, create_app, load_catalog

# ---------------------------------------------------------------------------------------------
# The simulator: its sample catalog, an in-process app, and a real server on a free port.
# ---------------------------------------------------------------------------------------------

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"
SAMPLE_CATALOG = SAMPLE_DATA / "catalog.json"


def _sample_key(access: str) -> str:
    keys: list[dict[str, str]] = json.loads(SAMPLE_CATALOG.read_text(encoding="utf-8"))["api_keys"]
    return next(k["key"] for k in keys if k["access"] == access)


# The sample catalog's keys: simulator fixtures, not secrets.
FULL_KEY = _sample_key("FullControl")
READ_ONLY_KEY = _sample_key("ReadOnly")


PROXY_VARIABLES = [
    f"{scheme}_proxy" if lower else f"{scheme.upper()}_PROXY"
    for scheme in ("http", "https", "all", "no")
    for lower in (True, False)
]


@pytest.fixture(autouse=True)
def _no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's or CI's proxy settings away from tests that talk to 127.0.0.1."""
    for name in [*PROXY_VARIABLES, "LMS365_API_KEY_FILE"]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only."""
    return "asyncio"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """Load the sample catalog once (relative dates resolve against the session start)."""
    return load_catalog(SAMPLE_CATALOG)


@pytest.fixture
def sim_app(catalog: Catalog) -> Callable[..., Simulator]:
    """Build a fresh simulator over the sample catalog: ``sim_app(latency_ms=5, ...)``."""

    def make(**create_app_kwargs: Any) -> Simulator:
        return create_app(catalog, **create_app_kwargs)

    return make


@pytest.fixture
def sim_server() -> Iterator[Callable[[Simulator], SimulatorServer]]:
    """Start a real uvicorn server for an app: ``sim_server(app).base_url``; stopped after."""
    started: list[SimulatorServer] = []

    def start(app: Simulator) -> SimulatorServer:
        server = SimulatorServer(app).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
