"""Helpers the command-line tests share: a many-user catalog, sheets for it, the CLI in-process."""

from __future__ import annotations

import csv
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from click.testing import CliRunner, Result

from batch_enroll.cli import main
from batch_enroll.simulator import Catalog, Simulator, SimulatorServer, create_app
from tests.conftest import FULL_KEY

# The sheets name these courses by their codes, as HR does; LMS365 knows them by GUID.
COURSES = (201, 202, 203)


def course_guid(code: int) -> str:
    """Return the GUID of the test course with this code."""
    return f"00000000-0000-4000-8000-000000000{code}"


def big_catalog(
    users: int, *, key: str = FULL_KEY, guid_of: Callable[[int], str] = course_guid
) -> Catalog:
    """A catalog with many users and three open e-learning courses."""
    return Catalog.from_dict(
        {
            "api_keys": [{"key": key, "access": "FullControl"}],
            "courses": [
                {
                    "Id": guid_of(cid),
                    "CourseID": str(cid),
                    "Title": f"Course {cid}",
                    "CourseType": "ELearning",
                    "CourseSessionEnrollmentType": None,
                    "EnrollmentFlow": "AutomaticApproval",
                    "IsPublished": True,
                    "IsEnded": False,
                    "IsDeleted": False,
                    "CourseSessions": [],
                }
                for cid in COURSES
            ],
            "users": [
                {
                    "LoginName": f"i:0#.f|membership|user{n}@contoso.com",
                    "Email": f"user{n}@contoso.com",
                    "Title": f"User {n}",
                }
                for n in range(users)
            ],
            "groups": [],
            "enrollments": [],
        }
    )


def write_sheet(path: Path, users: int, *, by_guid: bool = False) -> Path:
    """Write a sheet naming the courses by code (or by GUID, which needs no lookup)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["course_id", "user_login_name", "employee_no"])
        for n in range(users):
            for cid in COURSES:
                course = course_guid(cid) if by_guid else cid
                writer.writerow([course, f"user{n}@contoso.com", f"E{n:05d}"])
    return path


def read_results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def invoke(*args: str, **env: str) -> Result:
    """Run the command line in-process with the sample full-control key; ``env`` adds to it."""
    return CliRunner().invoke(main, list(args), env={"LMS365_API_KEY": FULL_KEY, **env})


def run_argv(sheet: Path, out: Path, base_url: str, *options: str) -> list[str]:
    """Return the arguments of ``run`` on ``sheet`` into ``out`` against ``base_url``."""
    return ["run", str(sheet), "--out", str(out), "--base-url", base_url, *options]


def against_one_row(
    tmp_path: Path, command: str, *args: str, env: dict[str, str] | None = None
) -> tuple[Result, Simulator]:
    """Run ``command`` on a one-row sheet against a fresh simulator; return its result and app.

    ``env`` is the whole environment (by default, the sample full-control key alone).
    """
    app = create_app(big_catalog(1))
    sheet = write_sheet(tmp_path / "s.csv", 1)
    with SimulatorServer(app) as server:
        argv = [command, str(sheet), "--base-url", server.base_url, *args]
        result = CliRunner().invoke(
            main, argv, env=env if env is not None else {"LMS365_API_KEY": FULL_KEY}
        )
    return result, app


def free_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_simulator(base: str, *, seconds: float = 20) -> None:
    """Return once the simulator at ``base`` answers; fail the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(f"{base}/_sim/stats", timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the simulator never came up"
            time.sleep(0.1)
