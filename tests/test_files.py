"""Output files appear whole or not at all, and unwritable outputs are refused up front."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from batch_enroll.files import UnwritableError, atomic_open, atomic_path, check_writable


def test_a_file_appears_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "out" / "results.csv"
    with atomic_open(target) as handle:
        handle.write("half")
        assert not target.exists()  # a reader sees nothing yet
        handle.write(" and the rest")
    assert target.read_text(encoding="utf-8") == "half and the rest"
    assert [p.name for p in target.parent.iterdir()] == ["results.csv"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old", encoding="utf-8")

    def write_and_fail() -> None:
        with atomic_open(target) as handle:
            handle.write("new but broken")
            raise RuntimeError("disk trouble")

    with pytest.raises(RuntimeError):
        write_and_fail()
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_the_temporary_sits_beside_the_target(tmp_path: Path) -> None:
    target = tmp_path / "book.xlsx"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".book.xlsx.")
        tmp.write_bytes(b"PK")
    assert target.read_bytes() == b"PK"


def test_a_replaced_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path: Path) -> None:
    kept = tmp_path / "kept.csv"
    kept.write_text("x", encoding="utf-8")
    kept.chmod(0o640)
    with atomic_open(kept) as handle:
        handle.write("y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    old = os.umask(0o027)
    try:
        fresh = tmp_path / "fresh.csv"
        with atomic_open(fresh) as handle:
            handle.write("z")
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640


def test_writable_outputs_pass_and_leave_nothing_behind(tmp_path: Path) -> None:
    check_writable(
        replaced=[("results", tmp_path / "new" / "r.csv"), ("summary JSON", None)],
        appended=[("journal", tmp_path / "new" / "r.csv.journal")],
    )
    assert list((tmp_path / "new").iterdir()) == []


def test_a_folder_in_place_of_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r.csv").mkdir()
    with pytest.raises(UnwritableError, match=r"cannot write the results .*r\.csv: it is a folder"):
        check_writable(replaced=[("results", tmp_path / "r.csv")])


def test_a_folder_that_cannot_be_made_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(UnwritableError) as caught:
        check_writable(replaced=[("summary JSON", blocker / "sub" / "s.json")])
    message = str(caught.value)
    assert "cannot write the summary JSON" in message
    assert "nothing was sent" in message
    assert "\n" not in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_and_a_read_only_journal_are_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    journal = tmp_path / "r.csv.journal"
    journal.write_text("", encoding="utf-8")
    journal.chmod(0o444)
    locked.chmod(0o555)
    try:
        with pytest.raises(UnwritableError, match="Permission denied"):
            check_writable(replaced=[("results", locked / "r.csv")])
        with pytest.raises(UnwritableError, match="read-only"):
            check_writable(appended=[("journal", journal)])
    finally:
        locked.chmod(0o755)
