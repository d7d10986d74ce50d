"""Write one structured line per request outcome, for on-call engineers.

Lines name the method, path, row, status and timing; never a header, a body
or the API key.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from batch_enroll.options import RequestEvent

__all__ = ["RequestLog"]


class RequestLog:
    """Append request events to a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] = path.open("a", encoding="utf-8")

    def __call__(self, event: RequestEvent) -> None:
        """Write one event."""
        record = {"ts": round(time.time(), 3), **event}
        self._handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")

    def close(self) -> None:
        """Flush and close the file."""
        self._handle.close()

    def __enter__(self) -> RequestLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
