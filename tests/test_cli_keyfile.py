"""--api-key-file and LMS365_API_KEY_FILE through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from batch_enroll.cli import main
from batch_enroll.simulator import SimulatorServer, create_app
from tests.conftest import FULL_KEY
from tests.helpers import against_one_row, big_catalog, read_results, write_sheet


def invoke(*args: str, **env: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def key_file(tmp_path: Path, content: str, mode: int = 0o600) -> Path:
    path = tmp_path / "api-key"
    path.write_text(content, encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_key_file_is_used_for_run(how: str, tmp_path: Path) -> None:
    path = key_file(tmp_path, FULL_KEY + "\n")
    out = tmp_path / "r.csv"
    with SimulatorServer(create_app(big_catalog(1))) as server:
        args = ["run", str(write_sheet(tmp_path / "s.csv", 1)), "--out", str(out)]
        args += ["--base-url", server.base_url, "--no-progress"]
        if how == "option":
            result = invoke(*args, "--api-key-file", str(path))
        else:
            result = invoke(*args, LMS365_API_KEY_FILE=str(path))
    assert result.exit_code == 0, result.output
    assert {r["status"] for r in read_results(out)} == {"enrolled"}
    assert "warning" not in result.output
    assert FULL_KEY not in result.output


def test_a_key_file_others_can_read_is_used_with_a_warning(tmp_path: Path) -> None:
    path = key_file(tmp_path, FULL_KEY, mode=0o644)
    with SimulatorServer(create_app(big_catalog(1))) as server:
        result = invoke(
            "validate",
            str(write_sheet(tmp_path / "s.csv", 1)),
            "--base-url",
            server.base_url,
            "--api-key-file",
            str(path),
        )
    assert result.exit_code == 0, result.output
    assert "can be read by other users (mode 0644)" in result.output
    assert FULL_KEY not in result.output


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "cannot read the API key file"), ("", "is empty"), ("\n", "is empty")],
)
def test_a_missing_or_empty_key_file_is_one_line_and_exit_2(
    content: str | None, words: str, tmp_path: Path
) -> None:
    path = tmp_path / "api-key" if content is None else key_file(tmp_path, content)
    result, app = against_one_row(tmp_path, "run", env={"LMS365_API_KEY_FILE": str(path)})
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("batch-enroll: error: ")
    assert words in line
    assert app.stats.requests_total == 0


def test_a_key_and_a_key_file_on_the_command_line_are_refused(tmp_path: Path) -> None:
    path = key_file(tmp_path, FULL_KEY)
    result = invoke(
        "run",
        str(write_sheet(tmp_path / "s.csv", 1)),
        "--api-key",
        "typed-key-1234",
        "--api-key-file",
        str(path),
    )
    assert result.exit_code == 2, result.output
    assert "both an API key and an API key file" in result.output
    assert "typed-key-1234" not in result.output
    assert FULL_KEY not in result.output


def test_a_typed_key_file_outranks_a_key_in_the_environment(tmp_path: Path) -> None:
    path = key_file(tmp_path, FULL_KEY)
    out = tmp_path / "r.csv"
    result, _ = against_one_row(
        tmp_path,
        "run",
        "--out",
        str(out),
        "--no-progress",
        "--api-key-file",
        str(path),
        env={"LMS365_API_KEY": "stale-key-from-env"},
    )
    assert result.exit_code == 0, result.output
