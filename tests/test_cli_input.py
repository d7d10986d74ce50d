"""What the CLI reads: only regular files, within --max-input-mb; ragged rows; HR-shaped sheets.

Pipes, devices and sockets are made in a temporary folder by each test, and every
case goes through the real ``batch-enroll`` command.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner, Result

from batch_enroll.cli import main
from tests.conftest import FULL_KEY, SAMPLE_CATALOG

GOOD = "course_id,user_login_name\n1,ann@contoso.com\n"


def validate(path: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["validate", str(path), "--offline", *args], catch_exceptions=False
    )


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    assert len(lines[0]) <= len("batch-enroll: error: ") + 200
    return lines[0]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------ kinds of file


@pytest.mark.timeout(20)
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    pipe = tmp_path / "hires.csv"
    os.mkfifo(pipe)

    line = one_error_line(validate(pipe))

    assert line == (
        f"batch-enroll: error: {pipe}: this is a named pipe (FIFO), not a regular file;"
        " save the sheet as a file and give its path"
    )


@pytest.mark.timeout(20)
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_a_symlink_to_an_endless_device_is_refused(tmp_path: Path, device: str) -> None:
    if not Path(device).exists():
        pytest.skip(f"{device} is not on this system")
    link = tmp_path / "hires.csv"
    link.symlink_to(device)

    line = one_error_line(validate(link))

    assert "this is a device, not a regular file" in line


@pytest.mark.timeout(20)
def test_a_socket_is_refused() -> None:
    # A socket path must be short (108 bytes): pytest's folders can be longer.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.csv"
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(path))
            line = one_error_line(validate(path))
    assert "this is a socket, not a regular file" in line


def test_a_folder_is_refused(tmp_path: Path) -> None:
    assert "this is a folder, not a regular file" in one_error_line(validate(tmp_path))


def test_a_symlink_to_a_regular_file_is_read(tmp_path: Path) -> None:
    target = tmp_path / "real.csv"
    target.write_text(GOOD, encoding="utf-8")
    link = tmp_path / "link.csv"
    link.symlink_to(target)

    result = validate(link)

    assert result.exit_code == 0, result.output


def test_a_file_over_max_input_mb_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.csv"
    path.write_text(GOOD + "2,bob@contoso.com\n" * 70_000, encoding="utf-8")  # about 1.2 MB
    opened: list[Path] = []
    real_open = Path.open

    def spy(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(self)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)

    line = one_error_line(validate(path, "--max-input-mb", "1"))

    assert line == (
        f"batch-enroll: error: {path}: the file is 1.2 MB, more than --max-input-mb 1 allows;"
        " raise it if the file is right"
    )
    assert path not in opened
    monkeypatch.setattr(Path, "open", real_open)
    assert validate(path, "--max-input-mb", "2").exit_code == 0


def test_max_input_mb_must_be_positive(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(GOOD, encoding="utf-8")

    result = validate(path, "--max-input-mb", "0")

    assert result.exit_code == 2
    assert "--max-input-mb" in result.output


# ------------------------------------------------------------------ ragged rows


def test_a_row_with_an_unquoted_comma_is_invalid_and_the_run_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "hires.csv"
    path.write_text(
        "course_id,user_login_name,address\n"
        "1,ann@contoso.com,Main Street 1\n"
        "1,bob@contoso.com,Elm Road 2, Springfield, IL\n"
        "2,cy@contoso.com\n",
        encoding="utf-8",
    )
    report = tmp_path / "report.csv"

    result = validate(path, "--report", str(report))

    assert result.exit_code == 1, result.output
    assert "RaggedRow x1 (rows 3)" in result.output
    rows = read_rows(report)
    assert [(r["row"], r["status"], r["error_code"]) for r in rows] == [
        ("2", "ok", ""),
        ("3", "invalid", "RaggedRow"),
        ("4", "ok", ""),
    ]
    assert rows[1]["error_message"] == (
        "row 3 has 5 cells, the header has 3: is there an unquoted comma in it?"
    )
    assert rows[2]["address"] == ""  # fewer cells read as empty


# ------------------------------------------------------------------ against the simulator


def _enrollable() -> tuple[list[Any], list[str]]:
    """Return open e-learning course ids and user e-mails of the sample catalog."""
    catalog = json.loads(SAMPLE_CATALOG.read_text(encoding="utf-8"))
    courses = [
        c["Id"]
        for c in catalog["courses"]
        if c["CourseType"] == "ELearning"
        and c.get("IsPublished")
        and not c.get("IsEnded")
        and not c.get("IsDeleted")
        and c.get("EnrollmentFlow") == "AutomaticApproval"
    ]
    return courses, [u["Email"] for u in catalog["users"]]


@pytest.fixture
def server(sim_app: Callable[..., Any], sim_server: Callable[[Any], Any]) -> Any:
    return sim_server(sim_app())


def test_an_hr_workbook_enrolls_every_row_under_its_own_row_numbers(
    server: Any, tmp_path: Path
) -> None:
    courses, users = _enrollable()
    assert courses
    assert len(users) >= 3
    book = openpyxl.Workbook()
    instructions = book.active
    assert instructions is not None
    instructions.title = "Instructions"
    instructions.append(["One row per new hire on the Hires sheet."])
    hires = book.create_sheet("Hires")
    hires.append(["Onboarding December 2026"])
    hires.append([])
    hires.append(["Course\nID", "E-mail\u00a0", "Start\ndate"])
    expected_rows = []
    for number, user in enumerate(users[:3]):
        hires.append([courses[0], user, f"2026-12-0{number + 1}"])
        expected_rows.append(str(4 + number))
    lists = book.create_sheet("Lists")
    lists.append(["course", "user"])
    lists.append([courses[0], "must-not-be-sent@contoso.com"])
    lists.sheet_state = "hidden"
    path = tmp_path / "hires.xlsx"
    book.save(path)
    out = tmp_path / "results.csv"

    result = CliRunner().invoke(
        main,
        ["run", str(path), "--out", str(out), "--base-url", server.base_url, "--no-progress"],
        env={"LMS365_API_KEY": FULL_KEY},
        catch_exceptions=False,
    )

    assert result.exit_code == 0, result.output
    assert 'Read sheet "Hires" (2 of 3); header on row 3; rows 1-2 skipped' in result.output
    rows = read_rows(out)
    assert [r["row"] for r in rows] == expected_rows
    assert {r["status"] for r in rows} <= {"enrolled", "already_enrolled"}
    assert [r["Start date"] for r in rows] == ["2026-12-01", "2026-12-02", "2026-12-03"]
