"""Read the API key from a file: a systemd credential, a container secret, a 0600 file."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path

from batch_enroll.errors import ApiKeyError
from batch_enroll.redact import remember_secret

__all__ = [
    "API_KEY_ENV",
    "API_KEY_FILE_ENV",
    "ApiKey",
    "ApiKeyError",
    "choose_api_key",
    "read_key_file",
]

API_KEY_ENV = "LMS365_API_KEY"
API_KEY_FILE_ENV = "LMS365_API_KEY_FILE"
#: A key is a few dozen characters; anything this big is the wrong file.
MAX_KEY_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class ApiKey:
    """The key to send, and what the user should hear about where it came from."""

    key: str = field(repr=False)
    warnings: tuple[str, ...] = ()


def read_key_file(path: str | Path) -> ApiKey:
    """Read a key file: one line, its trailing newline dropped; warn if others may read it."""
    path = Path(path)
    try:
        # Looked at before opening: opening a FIFO would wait for a writer forever.
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ApiKeyError(f"the API key file {path} is not a regular file")
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ApiKeyError(
            f"cannot read the API key file {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ApiKeyError(f"the API key file {path} is too big to hold a key")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiKeyError(f"the API key file {path} is not text") from None
    # Editors and `echo` end the file with a newline; a key never holds whitespace.
    key = text.strip()
    if not key:
        raise ApiKeyError(f"the API key file {path} is empty")
    if any(ch.isspace() for ch in key):
        raise ApiKeyError(
            f"the API key file {path} holds more than the key (spaces or several lines)"
        )
    remember_secret(key)
    warnings: list[str] = []
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.append(
            f"warning: the API key file {path} can be read by other users (mode {mode:04o});"
            f" restrict it with: chmod 600 {path}"
        )
    return ApiKey(key, tuple(warnings))


def choose_api_key(
    *,
    key: str | None,
    key_from_env: bool,
    key_file: str | Path | None,
    key_file_from_env: bool,
) -> ApiKey | None:
    """Pick the key from ``--api-key``/``LMS365_API_KEY`` or ``--api-key-file``/its variable.

    What is typed on the command line outranks what the environment holds; the key and a
    key file given the same way are ambiguous and refused. None: no key was given.
    """
    if key and key_file:
        if key_from_env and not key_file_from_env:
            key = None  # --api-key-file typed now outranks a variable set long ago
        elif key_file_from_env and not key_from_env:
            key_file = None
        else:
            where = "environment" if key_from_env else "command line"
            raise ApiKeyError(
                f"the {where} gives both an API key and an API key file: keep one"
                f" ({API_KEY_ENV} / {API_KEY_FILE_ENV}, --api-key / --api-key-file)"
            )
    if key_file:
        return read_key_file(key_file)
    if key:
        remember_secret(key)
        return ApiKey(key)
    return None
