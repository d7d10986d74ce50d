"""Write output files whole or not at all, and check before a run that they can be written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from batch_enroll.errors import UnwritableError

__all__ = ["UnwritableError", "atomic_open", "atomic_path", "check_writable", "optional_path"]


def _default_mode() -> int:
    # What open() would give a new file: 0o666 less the umask. Reading the umask
    # means setting it, so it is set straight back.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place when the block ends well.

    A reader (a scheduler, a dashboard) sees the old file or the new one, never half of
    one; a crash or an exception leaves the old file as it was and no temporary behind.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes the file 0600; a replaced file keeps its mode, a new one gets
        # what any file the user creates gets, so a dashboard's user can read it.
        try:
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = _default_mode()
        os.chmod(tmp, mode)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself survive a power cut, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # Windows cannot open a folder; its rename is durable enough
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(
    path: str | Path, *, encoding: str = "utf-8", newline: str | None = None
) -> Iterator[IO[str]]:
    """Open a text file for writing that appears at ``path`` only once it is complete."""
    with atomic_path(path) as tmp, tmp.open("w", encoding=encoding, newline=newline) as handle:
        yield handle


def check_writable(
    *,
    replaced: Iterable[tuple[str, str | Path | None]] = (),
    appended: Iterable[tuple[str, str | Path | None]] = (),
) -> None:
    """Refuse, before anything is sent, output files that could not be written.

    Each pair names what a file is ("results", "journal", ...) and its path (None: not
    asked for). ``replaced`` files are renamed into place, so only their folder must take
    a new file; ``appended`` files are written in place, so an existing one must be writable.
    """
    for what, path, in_place in [
        *((what, path, False) for what, path in replaced),
        *((what, path, True) for what, path in appended),
    ]:
        if path is None:
            continue
        target = Path(path)
        if target.is_dir():
            raise UnwritableError(f"cannot write the {what} {target}: it is a folder")
        folder = target.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Creating a file is the only honest test: permissions, read-only mounts,
            # quotas and ACLs all answer it, where os.access answers only the first.
            fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UnwritableError(
                f"cannot write the {what} {target}: {reason} in {folder}; nothing was sent"
            ) from None
        if in_place and target.exists() and not os.access(target, os.W_OK):
            raise UnwritableError(
                f"cannot write the {what} {target}: the file is read-only; nothing was sent"
            )


def optional_path(path: str | Path | None) -> Path | None:
    """Return ``path`` as a Path; None (a file not asked for) stays None."""
    return Path(path) if path is not None else None
