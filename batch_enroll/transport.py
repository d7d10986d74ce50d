"""Build the connection layer every LMS365 request goes through.

One place decides how requests reach the network (pool size, TLS trust), so a
change such as a proxy setting lands here and nowhere else.
"""

from __future__ import annotations

import httpx

from batch_enroll.options import ConnectionOptions

__all__ = ["make_transport"]


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
