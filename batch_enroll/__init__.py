"""Enroll people into LMS365 courses in bulk, from a CSV or Excel sheet.

The command line is a thin layer over this library::

    from batch_enroll import RunOptions, run_sheet
    summary = run_sheet("hires.xlsx", out="hires-results.csv",
                        options=RunOptions(api_key=key))

Names load on first use, so ``batch-enroll --help`` does not pay for pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    __version__: str

    from batch_enroll.errors import (
        ApiKeyError,
        AuthFailure,
        BatchEnrollError,
        CallFailed,
        ConfigError,
        JournalError,
        LoadError,
        ProxyConfigError,
        ResumeError,
        RunLocked,
        UnwritableError,
    )
    from batch_enroll.options import (
        DEFAULT_CONCURRENCY,
        REGIONS,
        ConnectionOptions,
        RunOptions,
        resolve_base_url,
    )
    from batch_enroll.pool import StopHandle
    from batch_enroll.progress import Progress
    from batch_enroll.reporter import Summary
    from batch_enroll.runner import (
        run_sheet,
        run_sheet_async,
        validate_sheet,
        validate_sheet_async,
    )

#: Each public name and the module that defines it.
_HOMES = {
    "ApiKeyError": "errors",
    "AuthFailure": "errors",
    "BatchEnrollError": "errors",
    "CallFailed": "errors",
    "ConfigError": "errors",
    "JournalError": "errors",
    "LoadError": "errors",
    "ProxyConfigError": "errors",
    "ResumeError": "errors",
    "RunLocked": "errors",
    "UnwritableError": "errors",
    "DEFAULT_CONCURRENCY": "options",
    "REGIONS": "options",
    "ConnectionOptions": "options",
    "RunOptions": "options",
    "resolve_base_url": "options",
    "StopHandle": "pool",
    "Progress": "progress",
    "Summary": "reporter",
    "run_sheet": "runner",
    "run_sheet_async": "runner",
    "validate_sheet": "runner",
    "validate_sheet_async": "runner",
}

__all__ = [
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


def __getattr__(name: str) -> Any:
    if name == "__version__":
        # Read on demand: importlib.metadata costs more than the rest of --help.
        from importlib.metadata import version

        globals()[name] = value = version("batch_enroll")
        return value
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'batch_enroll' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"batch_enroll.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
