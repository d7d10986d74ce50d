"""The public API: a narrow, pinned set of names, one error hierarchy, one version."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pkgutil
import subprocess
import sys

import pytest

import batch_enroll
from batch_enroll import errors

PUBLIC = [
    "DEFAULT_CONCURRENCY",
    "REGIONS",
    "ApiKeyError",
    "AuthFailure",
    "BatchEnrollError",
    "CallFailed",
    "ConfigError",
    "ConnectionOptions",
    "JournalError",
    "LoadError",
    "Progress",
    "ProxyConfigError",
    "ResumeError",
    "RunLocked",
    "RunOptions",
    "StopHandle",
    "Summary",
    "UnwritableError",
    "__version__",
    "resolve_base_url",
    "run_sheet",
    "run_sheet_async",
    "validate_sheet",
    "validate_sheet_async",
]


def test_the_public_names_are_pinned() -> None:
    assert sorted(batch_enroll.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(batch_enroll, name) is not None, name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="send_jobs"):
        batch_enroll.send_jobs  # type: ignore[attr-defined]  # noqa: B018


def test_the_version_comes_from_the_package_metadata() -> None:
    assert batch_enroll.__version__ == importlib.metadata.version("batch_enroll")


def test_every_error_is_a_batch_enroll_error_and_public() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, Exception)
    ]
    assert {cls.__name__ for cls in classes} == set(errors.__all__)
    for cls in classes:
        assert issubclass(cls, batch_enroll.BatchEnrollError), cls
        assert cls.__name__ in batch_enroll.__all__


def test_no_module_defines_an_error_of_its_own() -> None:
    # One hierarchy in one module: a caller finds every error batch_enroll raises there.
    strays = []
    for module in pkgutil.walk_packages(batch_enroll.__path__, "batch_enroll."):
        if module.name.endswith(".__main__"):
            continue  # importing it runs the command line
        for value in vars(importlib.import_module(module.name)).values():
            if (
                inspect.isclass(value)
                and issubclass(value, batch_enroll.BatchEnrollError)
                and value.__module__ != errors.__name__
            ):
                strays.append(f"{value.__module__}.{value.__name__}")
    assert strays == []


def test_the_async_entry_points_are_coroutines_the_sync_ones_are_not() -> None:
    assert inspect.iscoroutinefunction(batch_enroll.run_sheet_async)
    assert inspect.iscoroutinefunction(batch_enroll.validate_sheet_async)
    assert not inspect.iscoroutinefunction(batch_enroll.run_sheet)
    assert not inspect.iscoroutinefunction(batch_enroll.validate_sheet)


def test_the_command_line_starts_without_the_heavy_libraries() -> None:
    code = (
        "import sys, batch_enroll.cli;"
        "print(' '.join(m for m in ('pandas', 'httpx', 'anyio', 'aiohttp', 'numpy', 'tqdm')"
        " if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
