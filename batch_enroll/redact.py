"""Keep secrets out of every message: the API key and proxy passwords are scrubbed on the way out.

Messages are built in many places (transport errors quote URLs, an unexpected exception
may quote anything); the last line of defence is to scrub every known secret from text
before it is printed or written.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

__all__ = ["MASK", "forget_secrets", "remember_secret", "scrub"]

MASK = "***"
#: Shorter strings would mask ordinary words; no real key or password is this short.
_MIN_LENGTH = 4

_secrets: set[str] = set()


def remember_secret(value: str | None) -> None:
    """Scrub ``value``, in the forms a URL or a message may carry it, from every message."""
    if not value or len(value) < _MIN_LENGTH:
        return
    for form in (value, quote(value, safe=""), unquote(value)):
        if len(form) >= _MIN_LENGTH:
            _secrets.add(form)


def forget_secrets() -> None:
    """Forget every remembered secret (for tests and long-lived library callers)."""
    _secrets.clear()


def scrub(text: str) -> str:
    """Return ``text`` with every remembered secret replaced by ``***``."""
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text
