"""The README documents every command and option, and the two first commands."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from batch_enroll.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(main.commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", COMMANDS)
def test_command_is_documented(name: str) -> None:
    assert f"### `batch-enroll {name}`" in README


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (name, opt)
        for name in COMMANDS
        for param in main.commands[name].params  # type: ignore[attr-defined]
        if isinstance(param, click.Option)
        for opt in param.opts
        if opt.startswith("--")
    ],
)
def test_option_is_documented(command: str, option: str) -> None:
    assert f"`{option}" in README or f"[{option}" in README, f"{command} {option}"


def test_readme_opens_with_make_demo_and_make_test() -> None:
    first_block = README.split("```")[1]
    assert "make demo" in first_block
    assert "make test" in first_block


def test_ci_runs_the_readme_test_command() -> None:
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
