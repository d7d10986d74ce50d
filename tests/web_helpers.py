"""Shared pieces of the web app's tests: an app over a simulator, and its upload calls."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from batch_enroll.runner import RunOptions
from batch_enroll.web import WebConfig, create_app
from tests.conftest import FULL_KEY, SAMPLE_DATA

SAMPLE_XLSX = SAMPLE_DATA / "onboarding.xlsx"
LOCAL = "http://127.0.0.1"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def web_config(data_dir: Path, base_url: str, **overrides: Any) -> WebConfig:
    """Return the config `serve` builds on loopback, against the given LMS365."""
    options = RunOptions(base_url=base_url, api_key=FULL_KEY, concurrency=4)
    settings: dict[str, Any] = {
        "data_dir": data_dir,
        "options": options,
        "allowed_hosts": LOOPBACK_HOSTS,
    }
    settings.update(overrides)
    return WebConfig(**settings)


def client_for(config: WebConfig, *, raise_server_exceptions: bool = True) -> TestClient:
    """Return a TestClient (use it as a context manager) for a fresh app."""
    return TestClient(
        create_app(config), base_url=LOCAL, raise_server_exceptions=raise_server_exceptions
    )


def csrf(client: TestClient) -> dict[str, str]:
    """Return the CSRF header the page carries, read from the page itself."""
    page = client.get("/").text
    start = page.index('name="csrf-token" content="') + len('name="csrf-token" content="')
    return {"X-CSRF-Token": page[start : page.index('"', start)]}


def upload(client: TestClient, path: Path, name: str | None = None) -> Any:
    """Upload a sheet as the page does; return the response."""
    with path.open("rb") as handle:
        return client.post(
            "/api/uploads", files={"file": (name or path.name, handle)}, headers=csrf(client)
        )


def wait_run(client: TestClient, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll a run until it is no longer running; return its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
        if answer["state"] != "running":
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still running after {timeout} s: {answer}")
        time.sleep(0.05)


def hr_workbook(path: Path, people: list[tuple[str, str]]) -> Path:
    """Write a workbook as HR keeps one: instructions first, a title above the header.

    The first two people go on the sheet "Hires" (header on row 3), the rest on "Later".
    """
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Instructions"
    book.active["A1"] = "Fill in one row per person and course on the sheet Hires."
    hires = book.create_sheet("Hires")
    hires.append(["Onboarding December 2026"])
    hires.append([])
    hires.append(["Course\nID", "E-mail", "Team"])
    for course, login in people[:2]:
        hires.append([course, login, "<b>Sales</b>"])
    later = book.create_sheet("Later")
    later.append(["course_id", "user_login_name"])
    for course, login in people[2:]:
        later.append([course, login])
    book.save(path)
    return path


def booked(counts: dict[str, int]) -> int:
    """Return how many rows made an enrollment in LMS365: enrolled, or on a waiting list."""
    return counts.get("enrolled", 0) + counts.get("waitlisted", 0)
