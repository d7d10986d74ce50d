"""Shared benchmark helpers: data files, a simulator subprocess, the CLI, results.

Every scenario starts its own simulator in a separate process (the throttle is
per key and per process, and a client must not share its CPU with the server it
measures), writes its data under ``bench/out/`` and stops the server in a
``finally``. Nothing here touches anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
HOST = "127.0.0.1"
API_KEY = "bench-full-control-key"
# The venv's console script when run through ``make bench``; else the module.
_SCRIPT = Path(sys.executable).with_name("batch-enroll")
CLI: list[str] = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "batch_enroll"]

COURSES = 8
USERS = 10_000
#: Most seconds a server may take to answer its first request.
START_TIMEOUT_S = 20.0


def upn(user: int) -> str:
    """Return the e-mail of bench user ``user``."""
    return f"user{user:05d}@bench.example"


def course_guid(code: int) -> str:
    """Return the GUID of the bench course whose code (``CourseID``) is ``code``."""
    return f"00000000-0000-4000-8000-{code:012d}"


def catalog_path(*, courses: int = COURSES, users: int = USERS) -> Path:
    """Write (once) a catalog of e-learning courses and users; return its path."""
    path = OUT / f"catalog-v2-{courses}x{users}.json"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    catalog = {
        "api_keys": [{"key": API_KEY, "access": "FullControl"}],
        # Every user in every course: above LMS365's 5,000 a course, which is not measured here.
        "max_enrollments_per_course": users,
        "courses": [
            {
                "Id": course_guid(1000 + c),
                "CourseID": str(1000 + c),
                "Title": f"Bench course {c}",
                "CourseType": "ELearning",
                "CourseSessionEnrollmentType": None,
                "EnrollmentFlow": "AutomaticApproval",
                "IsPublished": True,
                "IsEnded": False,
                "IsDeleted": False,
                "CourseSessions": [],
            }
            for c in range(courses)
        ],
        "users": [
            {
                "LoginName": f"i:0#.f|membership|{upn(u)}",
                "Email": upn(u),
                "Title": f"User {u}",
            }
            for u in range(users)
        ],
    }
    _write_atomically(path, json.dumps(catalog).encode())
    return path


def sheet_path(rows: int, *, users: int = USERS, extra: bool = False) -> Path:
    """Write (once) a sheet of ``rows`` distinct course+user pairs; return its path.

    Row ``i`` enrolls user ``i % users`` into the course whose code is
    ``1000 + i // users`` (as HR sheets name courses), so no two rows collide and
    every row is enrollable against ``catalog_path()``.
    ``extra`` adds the kind of columns an HR export carries along.
    """
    name = f"sheet-{rows}{'-extra' if extra else ''}.csv"
    path = OUT / name
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    departments = ("Sales", "Engineering", "Finance", "Support", "Legal", "Operations")
    lines = [
        "course_id,user_login_name,course_session_ids" + (",department,manager" if extra else "")
    ]
    for i in range(rows):
        line = f"{1000 + i // users},{upn(i % users)},"
        if extra:
            line += f",{departments[i % len(departments)]},{upn((i * 7) % users)}"
        lines.append(line)
    _write_atomically(path, ("\n".join(lines) + "\n").encode())
    return path


def sheet_slice_path(first: int, rows: int, *, users: int = USERS) -> Path:
    """Write (once) the sheet of rows ``first`` .. ``first + rows`` of ``sheet_path``'s order.

    Two slices that do not overlap share no course+user pair: two runs can send them at
    once without enrolling anyone twice.
    """
    path = OUT / f"sheet-{first}+{rows}.csv"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    lines = ["course_id,user_login_name,course_session_ids"]
    lines += [f"{1000 + i // users},{upn(i % users)}," for i in range(first, first + rows)]
    _write_atomically(path, ("\n".join(lines) + "\n").encode())
    return path


def distinct_sheet_path(rows: int, *, courses: int = COURSES) -> Path:
    """Write (once) a sheet of ``rows`` rows whose every login is distinct; return its path.

    As HR writes one: a course by its code, its title (case and spacing as typed)
    or its GUID (any case, braces or not); a login as a plain UPN in mixed case or
    in the claims form with the prefix in any case; a sessions cell on some rows,
    nearly each one distinct (GUIDs, or a title and a start time). Nothing is
    repeated per person, so every per-distinct-cell cost is paid a million times.
    """
    path = OUT / f"sheet-distinct-{rows}.csv"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    departments = ("Sales", "Engineering", "Finance", "Support", "Legal", "Operations")
    prefixes = ("", "", "i:0#.f|membership|", "I:0#.F|Membership|")
    lines = ["course_id,user_login_name,course_session_ids,department,manager"]
    for i in range(rows):
        code = 1000 + i % courses
        written = (
            str(code),
            f"Bench course {code - 1000}",
            f" bench  COURSE {code - 1000} ",
            course_guid(code).upper(),
            "{" + course_guid(code) + "}",
        )[i % 5]
        name = f"Person.{i:07d}" if i % 3 else f"person.{i:07d}"
        login = f"{prefixes[i % 4]}{name}@corp{i % 7}.example"
        if i % 10 == 1:
            sessions = f"{i:08x}-0000-4000-8000-{i:012x}"
        elif i % 10 == 2:
            day = 1 + i % 28
            sessions = f'"Morning, Room {i % 97}; 2027-03-{day:02d} 09:{i % 60:02d}"'
        else:
            sessions = ""
        lines.append(
            f"{written},{login},{sessions},{departments[i % len(departments)]},"
            f"manager{i % 5000:05d}@corp.example"
        )
    _write_atomically(path, ("\n".join(lines) + "\n").encode())
    return path


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def http_json(url: str, *, method: str = "GET", timeout: float = 5.0) -> Any:
    """GET (or POST) a loopback URL and parse its JSON body."""
    request = urllib.request.Request(url, method=method)  # noqa: S310 - loopback http only
    with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
        body = answer.read()
    return json.loads(body) if body else None


@dataclass
class Simulator:
    """A ``batch-enroll simulate`` subprocess on a free loopback port."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        """Return the root URL."""
        return f"http://{HOST}:{self.port}"

    def stats(self) -> dict[str, Any]:
        """Return the simulator's ``/_sim/stats`` counters."""
        stats: dict[str, Any] = http_json(self.base_url + "/_sim/stats")
        return stats


@contextlib.contextmanager
def simulator(
    *,
    latency_ms: float = 0.0,
    rate_limit: float = 0.0,
    catalog: Path | None = None,
    rate_schedule: str | None = None,
) -> Iterator[Simulator]:
    """Start a fresh simulator process, wait until it answers, and always stop it."""
    catalog = catalog or catalog_path()
    OUT.mkdir(parents=True, exist_ok=True)
    for _attempt in range(3):  # the free port may be taken between probe and bind
        port = free_port()
        args = [
            *CLI,
            "simulate",
            "--host",
            HOST,
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
            "--rate-limit",
            str(rate_limit),
            "--catalog",
            str(catalog),
            *(["--rate-schedule", rate_schedule] if rate_schedule else []),
        ]
        # A file, not a pipe: a chatty server must never block on a full pipe mid-run.
        with (OUT / "simulator.log").open("ab") as errors:
            process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors)
        server = Simulator(port, process)
        try:
            if _wait_ready(server):
                yield server
                return
        finally:
            _stop(process)
    raise RuntimeError("the simulator did not start on a free port in three attempts")


def _wait_ready(server: Simulator) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            server.stats()
        except OSError:
            time.sleep(0.05)
            continue
        return True
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # uvicorn's graceful stop
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass
class Spawned:
    """How one child process ran: exit code, wall and CPU seconds, peak memory, output."""

    returncode: int
    wall_seconds: float
    cpu_seconds: float
    max_rss_bytes: int
    stdout: str
    stderr: str


def spawn(argv: Sequence[str], *, timeout: float) -> Spawned:
    """Run a command to completion, measuring that one child (not the others) with wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        pid = os.posix_spawn(
            argv[0],
            list(argv),
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            ],
        )
        deadline = started + timeout
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                break
            if time.perf_counter() > deadline:
                os.kill(pid, signal.SIGKILL)
                _, status, usage = os.wait4(pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Spawned(
            returncode=os.waitstatus_to_exitcode(status),
            wall_seconds=wall,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            max_rss_bytes=usage.ru_maxrss * 1024,  # Linux reports KiB
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


@dataclass
class CliRun:
    """What one ``batch-enroll run`` reported, and how its process ran."""

    summary: dict[str, Any]
    process: Spawned

    @property
    def enrolled(self) -> int:
        """Return the rows enrolled."""
        return int(self.summary.get("counts", {}).get("enrolled", 0))

    @property
    def sending_rate(self) -> float:
        """Return enrollments per second from the first request to the last answer."""
        seconds = float(self.summary.get("sending_seconds") or 0.0)
        return self.enrolled / seconds if seconds > 0 else 0.0

    @property
    def throttled_share(self) -> float:
        """Return the share of requests answered 429."""
        requests = int(self.summary.get("requests") or 0)
        return int(self.summary.get("throttled") or 0) / requests if requests else 0.0

    def check(self, rows: int) -> None:
        """Fail loudly when the run did not enroll every row: its figures would mislead."""
        if self.enrolled != rows:
            raise RuntimeError(
                f"batch-enroll enrolled {self.enrolled} of {rows} rows"
                f" (exit {self.process.returncode}): {self.process.stderr[-2000:]}"
            )


def run_cli(
    sheet: Path,
    server: Simulator,
    *,
    name: str,
    extra_args: Sequence[str] = (),
    timeout: float = 300.0,
) -> CliRun:
    """Run ``batch-enroll run`` on a sheet against a simulator and read its summary."""
    summary = OUT / f"{name}-summary.json"
    results = OUT / f"{name}-results.csv"
    for stale in (summary, results, results.with_name(results.name + ".journal")):
        stale.unlink(missing_ok=True)
    argv = [
        *CLI,
        "run",
        str(sheet),
        "--base-url",
        server.base_url,
        "--api-key",
        API_KEY,
        "--no-progress",
        "--summary-json",
        str(summary),
        "--out",
        str(results),
        *extra_args,
    ]
    process = spawn(argv, timeout=timeout)
    loaded: dict[str, Any] = json.loads(summary.read_text()) if summary.exists() else {}
    return CliRun(loaded, process)


def answers(log_file: Path) -> tuple[float, list[tuple[float, int]]]:
    """Read a ``--log-file``: the wall time the first request left, and (time, status) answers.

    A line is written when its answer arrives; it says how long the request took, so the
    first request's start is the earliest answer time less its round trip.
    """
    events = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    got = [(float(e["ts"]), int(e["http_status"] or 0)) for e in events]
    first = min(float(e["ts"]) - float(e["elapsed_ms"]) / 1000 for e in events)
    return first, got


@dataclass
class Row:
    """One line of the benchmark table."""

    scenario: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def machine() -> dict[str, str]:
    """Describe the machine the numbers come from."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count() or "?"),
        "cpu": model,
        "python": sys.version.split()[0],
        "platform": sys.platform,
    }


def table(rows: Sequence[Row]) -> str:
    """Render rows as a Markdown table."""
    head = ("scenario", "ours", "baseline (same run)", "ratio", "target", "met")
    body = [
        (r.scenario, r.ours, r.baseline, r.ratio, r.target, "yes" if r.met else "NO") for r in rows
    ]
    widths = [max(len(str(line[i])) for line in (head, *body)) for i in range(len(head))]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(head), rule, *(fmt(line) for line in body)])


def log(message: str) -> None:
    """Print progress to stderr, so stdout stays the table."""
    print(message, file=sys.stderr, flush=True)
