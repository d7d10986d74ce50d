"""The last-resort report: one line, a traceback file, no secret in either."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batch_enroll.crash import crash_line, innermost, write_crash_report
from batch_enroll.redact import forget_secrets, remember_secret

SECRET = "Pr0xy-Or-Key-Secret-55"


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.fixture(autouse=True)
def _secret() -> Iterator[None]:
    forget_secrets()
    remember_secret(SECRET)
    yield
    forget_secrets()


def test_the_line_names_type_message_and_report(tmp_path: Path) -> None:
    exc = raised(RuntimeError(f"boom with {SECRET}\nsecond line"))
    report = write_crash_report(exc, folder=tmp_path)
    assert report is not None
    assert report.parent == tmp_path
    line = crash_line(exc, report)
    assert line == (
        f"batch-enroll: internal error: RuntimeError: boom with *** second line;"
        f" the traceback is in {report}"
    )
    text = report.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: boom with ***" in text
    assert SECRET not in text


def test_a_long_message_is_cut() -> None:
    line = crash_line(raised(ValueError("x" * 5000)), None)
    assert len(line) < 300
    assert line.endswith("…")


def test_a_task_group_wrapper_is_looked_through() -> None:
    group = BaseExceptionGroup("unhandled errors in a TaskGroup", [KeyError("lost")])
    assert isinstance(innermost(group), KeyError)
    assert crash_line(group, None) == "batch-enroll: internal error: KeyError: 'lost'"
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [ValueError("a")]), OSError("b")])
    assert crash_line(nested, None) == "batch-enroll: internal error: ValueError: a (and 1 more)"


def test_an_unwritable_folder_falls_back_to_the_temp_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    report = write_crash_report(raised(OSError("x")), folder=blocker)
    assert report is not None
    try:
        assert report.parent != blocker
        assert report.name.startswith("batch-enroll-crash-")
    finally:
        report.unlink()
