"""Build the connection layer every LMS365 request goes through, and the pace it keeps.

One place decides how requests reach the network (pool size, TLS trust), so a
change such as a proxy setting lands here and nowhere else.
"""

from __future__ import annotations

import base64
import logging
import os
import ssl
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

import httpx

from batch_enroll.options import ConnectionOptions
from batch_enroll.proxy import ProxyChoice, ProxySettings
from batch_enroll.ratelimit import RateLimiter

__all__ = [
    "AUTO_START_RATE",
    "ProxyRouter",
    "make_limiter",
    "make_transport",
    "proxied_transport",
    "proxy_settings",
    "which_proxy",
]

log = logging.getLogger("batch_enroll")

#: Rate a run starts from in auto mode, before it has seen the tenant's throttle.
AUTO_START_RATE = 10.0


def proxy_settings(options: ConnectionOptions) -> ProxySettings:
    """Return what decides the proxies of these options (raises ProxyConfigError if unusable)."""
    return ProxySettings(proxy=options.proxy, env=dict(os.environ) if options.trust_env else {})


def which_proxy(options: ConnectionOptions, url: str | None = None) -> ProxyChoice:
    """Say which proxy requests to ``url`` (default: the base URL) go through, and why.

    ``which_proxy(options).describe()`` is one line with the password masked.
    """
    return proxy_settings(options).for_url(url or options.base_url)


def make_transport(options: ConnectionOptions) -> httpx.AsyncBaseTransport:
    """Return the caller's transport, or the fast default one sized to the concurrency.

    The default one sends each request through the proxy its URL calls for: ``--proxy``,
    or the environment's ``*_PROXY`` and ``NO_PROXY`` as curl reads them.
    """
    if options.transport is not None:
        return options.transport
    settings = proxy_settings(options)
    if log.isEnabledFor(logging.DEBUG):
        # Password masked: this is what --verbose shows.
        log.debug(
            "proxy for %s: %s", options.base_url, settings.for_url(options.base_url).describe()
        )
    return proxied_transport(settings, concurrency=options.concurrency, verify=options.verify)


def proxied_transport(
    settings: ProxySettings, *, concurrency: int, verify: ssl.SSLContext | str | bool = True
) -> httpx.AsyncBaseTransport:
    """Build the aiohttp transport, behind the proxies ``settings`` call for."""
    # httpx's own pool tops out far below what a tenant's throttle allows
    # (encode/httpx#3215); aiohttp's keeps up while callers keep httpx's API.
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    class ProxiedAiohttpTransport(AiohttpTransport):
        """Send the proxy's headers (its credentials) with plain http:// requests too.

        aiohttp sends them with CONNECT only.
        """

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if self.proxy is not None and request.url.scheme == "http":
                request.headers.update(self.proxy.headers)
            response: httpx.Response = await super().handle_async_request(request)
            return response

    def build(proxy: httpx.Proxy | None) -> httpx.AsyncBaseTransport:
        # The session is built without trust_env: the proxy is chosen here, per URL,
        # as curl would, not by aiohttp's own reading of the environment.
        made: httpx.AsyncBaseTransport = ProxiedAiohttpTransport(
            limits=limits, verify=verify, proxy=proxy
        )
        return made

    if settings.configured:
        return ProxyRouter(settings, build)
    return build(None)


def _httpx_proxy(url: str) -> httpx.Proxy:
    """Describe a proxy for a transport: the URL without credentials, and their header."""
    parts = urlsplit(url)
    hostport = parts.netloc.rpartition("@")[2]
    headers = {}
    if parts.username is not None:
        # Sent as a header rather than as the URL's user:password, which transports
        # quote in their errors; aiohttp also deprecates its own proxy_auth.
        user, password = unquote(parts.username), unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers["Proxy-Authorization"] = f"Basic {token}"
    return httpx.Proxy(f"http://{hostport}", headers=headers)


class ProxyRouter(httpx.AsyncBaseTransport):
    """Send each request through the proxy its URL calls for, over one transport per proxy.

    ``build`` makes a transport for a proxy (None: direct). A run talks to one host, so
    there is almost always exactly one; an ``@odata.nextLink`` to another host that
    NO_PROXY treats otherwise gets its own.
    """

    def __init__(
        self,
        settings: ProxySettings,
        build: Callable[[httpx.Proxy | None], httpx.AsyncBaseTransport],
    ) -> None:
        self._settings = settings
        self._build = build
        self._routes: dict[tuple[str, str, int | None], str | None] = {}
        self._transports: dict[str | None, httpx.AsyncBaseTransport] = {}

    def transport_for(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        """Return the transport that carries requests to ``url``."""
        key = (url.scheme, url.host, url.port)
        if key in self._routes:
            proxy_url = self._routes[key]
        else:
            proxy_url = self._settings.for_url(str(url)).url
            self._routes[key] = proxy_url
        transport = self._transports.get(proxy_url)
        if transport is None:
            transport = self._build(None if proxy_url is None else _httpx_proxy(proxy_url))
            self._transports[proxy_url] = transport
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` over the transport its URL's proxy calls for."""
        return await self.transport_for(request.url).handle_async_request(request)

    async def aclose(self) -> None:
        """Close every transport opened."""
        for transport in self._transports.values():
            await transport.aclose()
        self._transports.clear()


def make_limiter(rate: float | None) -> RateLimiter:
    """Return the limiter a run's requests share: ``rate`` per second, or None for auto."""
    if rate is None:
        return RateLimiter(rate=AUTO_START_RATE, adaptive=True)
    # A fixed rate is a ceiling, not a promise: pinned at R above a stricter
    # throttle, every request would meet a 429 and a Retry-After pause, and a run
    # would crawl at about one row a second. So it backs off and climbs back to R.
    return RateLimiter(rate=rate, adaptive=True, max_rate=rate)
