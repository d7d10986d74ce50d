"""The API key read from a file: trimmed, checked, never shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batch_enroll.keyfile import ApiKeyError, choose_api_key, read_key_file
from batch_enroll.redact import forget_secrets, scrub

KEY = "k3y-From-A-File-9d2e"


def key_file(tmp_path: Path, content: str | bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "api-key"
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("content", [KEY, KEY + "\n", KEY + "\r\n", "\ufeff" + KEY + "\n"])
def test_the_key_is_read_without_its_trailing_newline(tmp_path: Path, content: str) -> None:
    read = read_key_file(key_file(tmp_path, content))
    assert read.key == KEY
    assert read.warnings == ()
    assert KEY not in repr(read)


def test_a_key_file_others_can_read_gets_a_warning(tmp_path: Path) -> None:
    path = key_file(tmp_path, KEY, mode=0o644)
    read = read_key_file(path)
    assert read.key == KEY
    (warning,) = read.warnings
    assert "can be read by other users (mode 0644)" in warning
    assert f"chmod 600 {path}" in warning
    assert read_key_file(key_file(tmp_path, KEY, mode=0o640)).warnings  # group too
    assert read_key_file(key_file(tmp_path, KEY, mode=0o400)).warnings == ()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", "is empty"),
        ("\n  \n", "is empty"),
        (KEY + "\nsecond-line-secret\n", "holds more than the key"),
        (b"\xff\xfe\xfa" + b"x" * 10, "is not text"),
    ],
)
def test_an_unusable_file_is_refused_without_showing_it(
    tmp_path: Path, content: str | bytes, words: str
) -> None:
    path = key_file(tmp_path, content)
    with pytest.raises(ApiKeyError) as caught:
        read_key_file(path)
    message = str(caught.value)
    assert words in message
    assert str(path) in message
    assert KEY not in message
    assert "second-line-secret" not in message


def test_a_missing_file_a_folder_and_a_fifo_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ApiKeyError, match=r"cannot read the API key file .*No such file"):
        read_key_file(tmp_path / "nope")
    with pytest.raises(ApiKeyError, match="not a regular file"):
        read_key_file(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ApiKeyError, match="not a regular file"):
        read_key_file(fifo)  # would block forever if it were opened


def test_a_read_key_is_scrubbed_from_messages(tmp_path: Path) -> None:
    forget_secrets()
    read_key_file(key_file(tmp_path, KEY))
    assert scrub(f"boom: {KEY}") == "boom: ***"
    forget_secrets()


def test_choosing_between_the_key_and_the_key_file(tmp_path: Path) -> None:
    path = key_file(tmp_path, KEY)

    def choose(key: str | None, key_env: bool, file: Path | None, file_env: bool) -> str | None:
        chosen = choose_api_key(
            key=key, key_from_env=key_env, key_file=file, key_file_from_env=file_env
        )
        return None if chosen is None else chosen.key

    assert choose(None, False, None, False) is None
    assert choose("typed", False, None, False) == "typed"
    assert choose(None, False, path, True) == KEY
    assert choose("from-env", True, path, False) == KEY  # the typed file wins
    assert choose("typed", False, path, True) == "typed"  # the typed key wins
    with pytest.raises(ApiKeyError, match="command line gives both"):
        choose("typed", False, path, False)
    with pytest.raises(ApiKeyError, match="environment gives both"):
        choose("from-env", True, path, True)
