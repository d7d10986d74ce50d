"""Build the connection layer every LMS365 request goes through, and the pace it keeps.

One place decides how requests reach the network (pool size, TLS trust), so a
change such as a proxy setting lands here and nowhere else.
"""

from __future__ import annotations

import httpx

from batch_enroll.options import ConnectionOptions
from batch_enroll.ratelimit import RateLimiter

__all__ = ["AUTO_START_RATE", "make_limiter", "make_transport"]

#: Rate a run starts from in auto mode, before it has seen the tenant's throttle.
AUTO_START_RATE = 10.0


def make_transport(options: ConnectionOptions) -> httpx.AsyncBaseTransport:
    """Return the caller's transport, or the fast default one sized to the concurrency."""
    if options.transport is not None:
        return options.transport
    # httpx's own pool tops out far below what a tenant's throttle allows
    # (encode/httpx#3215); aiohttp's keeps up while callers keep httpx's API.
    from httpx_aiohttp import AiohttpTransport

    size = options.concurrency
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits, verify=options.verify)
    return transport


def make_limiter(rate: float | None) -> RateLimiter:
    """Return the limiter a run's requests share: ``rate`` per second, or None for auto."""
    if rate is None:
        return RateLimiter(rate=AUTO_START_RATE, adaptive=True)
    # A fixed rate is a ceiling, not a promise: pinned at R above a stricter
    # throttle, every request would meet a 429 and a Retry-After pause, and a run
    # would crawl at about one row a second. So it backs off and climbs back to R.
    return RateLimiter(rate=rate, adaptive=True, max_rate=rate)
