"""Fake the LMS365 API over real HTTP, for the demo, integration tests and benchmarks.

``load_catalog`` reads what the fake tenant holds, ``create_app`` builds the ASGI app over it,
and ``SimulatorServer`` (tests) or ``serve`` (the ``simulate`` command) put it on a socket.
"""

from __future__ import annotations

from batch_enroll.simulator.app import (
    Enrollment,
    SimulatedDrop,
    Simulator,
    SimulatorStats,
    create_app,
)
from batch_enroll.simulator.catalog import Catalog, CatalogError, load_catalog
from batch_enroll.simulator.server import DEFAULT_PORT, SimulatorServer, serve

__all__ = [
    "DEFAULT_PORT",
    "Catalog",
    "CatalogError",
    "Enrollment",
    "SimulatedDrop",
    "Simulator",
    "SimulatorServer",
    "SimulatorStats",
    "create_app",
    "load_catalog",
    "serve",
]
