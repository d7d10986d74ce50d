"""The page of ``batch-enroll serve``: check a sheet, enroll it, download the results."""

from __future__ import annotations

from batch_enroll.web.app import WebConfig, create_app, is_loopback

__all__ = ["WebConfig", "create_app", "is_loopback"]
