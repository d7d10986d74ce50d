"""Enroll people into LMS365 courses in bulk, from a CSV or Excel sheet.

The command line is a thin layer over this library::

    from batch_enroll import RunOptions, run_sheet
    summary = run_sheet("hires.xlsx", out="hires-results.csv",
                        options=RunOptions(api_key=key))
"""

from __future__ import annotations

__version__ = "0.1.0"

from batch_enroll.classifier import Outcome, Verdict, classify_exception, classify_response
from batch_enroll.client import AuthFailure, LmsClient
from batch_enroll.loader import LoadError, Sheet, load_sheet
from batch_enroll.model import Job, RowResult
from batch_enroll.pool import StopControl, send_jobs
from batch_enroll.ratelimit import RateLimiter
from batch_enroll.reporter import Summary, render_summary, results_frame, write_csv
from batch_enroll.resolve import fetch_courses, resolve_frame
from batch_enroll.runner import ConfigError, RunOptions, resolve_base_url, run_sheet, validate_sheet
from batch_enroll.validator import check_offline, check_sessions, jobs_from

__all__ = [
    "AuthFailure",
    "ConfigError",
    "Job",
    "LmsClient",
    "LoadError",
    "Outcome",
    "RateLimiter",
    "RowResult",
    "RunOptions",
    "Sheet",
    "StopControl",
    "Summary",
    "Verdict",
    "__version__",
    "check_offline",
    "check_sessions",
    "classify_exception",
    "classify_response",
    "fetch_courses",
    "jobs_from",
    "load_sheet",
    "render_summary",
    "resolve_base_url",
    "resolve_frame",
    "results_frame",
    "run_sheet",
    "send_jobs",
    "validate_sheet",
    "write_csv",
]
