"""Run the command-line interface with ``python -m batch_enroll``."""

from __future__ import annotations

from batch_enroll.cli import main

main()
