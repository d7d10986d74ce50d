"""Requests really go through the proxy: plain HTTP forwarded, HTTPS through CONNECT."""

from __future__ import annotations

import logging
import shutil
import ssl
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from batch_enroll.client import LmsClient
from batch_enroll.errors import AuthFailure
from batch_enroll.options import ConnectionOptions
from batch_enroll.proxy import ProxySettings
from batch_enroll.ratelimit import RateLimiter
from batch_enroll.simulator import Simulator, SimulatorServer
from batch_enroll.transport import ProxyRouter, make_transport, proxied_transport, which_proxy
from tests.conftest import FULL_KEY
from tests.proxy_server import ProxyServer, dead_port
from tests.tls_server import serve_tls

# Three courses of the sample tenant, by GUID: SAF-101, ONB-100 and the one coded 101.
SAF = "ac661ba6-a93b-4efe-ae1e-a7dec2d0bdcb"
ONB = "2eeca7f8-a911-4be1-8c39-394be12ad34a"
INFO = "445d6460-c016-44d5-9469-b339fd383a89"

pytestmark = pytest.mark.anyio


def transport(
    kind: str, settings: ProxySettings, verify: ssl.SSLContext | bool
) -> httpx.AsyncBaseTransport:
    """The tool's own transport (aiohttp), or httpx's behind the same proxy choice."""
    if kind == "aiohttp":
        return proxied_transport(settings, concurrency=4, verify=verify)
    return ProxyRouter(settings, lambda proxy: httpx.AsyncHTTPTransport(verify=verify, proxy=proxy))


KINDS = ["aiohttp", "httpx"]


def client(base_url: str, transport: httpx.AsyncBaseTransport) -> LmsClient:
    options = ConnectionOptions(
        base_url=base_url, api_key=FULL_KEY, max_retries=0, transport=transport
    )
    return LmsClient(options, limiter=RateLimiter(rate=1000))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("auth", [None, ("svc", "s3cr3t")])
async def test_plain_http_is_forwarded_by_the_proxy(
    kind: str, auth: tuple[str, str] | None, sim_app: Callable[..., Simulator]
) -> None:
    app = sim_app()
    with SimulatorServer(app) as server, dead_port() as port:
        # Nothing listens at the URL the client is given: only the proxy knows the way.
        routes = {f"127.0.0.1:{port}": ("127.0.0.1", server.port)}
        with ProxyServer(routes=routes, credentials=auth) as proxy:
            url = proxy.url_with_credentials(*auth) if auth else proxy.url
            settings = ProxySettings(env={"HTTP_PROXY": url})
            async with client(f"http://127.0.0.1:{port}", transport(kind, settings, True)) as lms:
                course = await lms.get_course(SAF)
                await lms.find_enrollments(SAF)
    assert course is not None
    assert len(proxy.stats.requests) == 2
    assert proxy.stats.requests[0].startswith(
        f"GET http://127.0.0.1:{port}/odata/v2/Courses({SAF})"
    )
    assert proxy.stats.refused == 0
    assert app.stats.requests_total == 2


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
@pytest.mark.parametrize("kind", KINDS)
async def test_https_goes_through_a_connect_tunnel_with_proxy_auth(
    kind: str, sim_app: Callable[..., Simulator], tmp_path: Path
) -> None:
    app = sim_app()
    with serve_tls(app, tmp_path) as (tls_port, cert), dead_port() as port:
        routes = {f"127.0.0.1:{port}": ("127.0.0.1", tls_port)}
        with ProxyServer(credentials=("svc", "p@ss:w0rd"), routes=routes) as proxy:
            settings = ProxySettings(
                proxy=f"http://svc:p%40ss%3Aw0rd@127.0.0.1:{proxy.port}", env={}
            )
            trusted = ssl.create_default_context(cafile=str(cert))
            proxied = transport(kind, settings, trusted)
            async with client(f"https://127.0.0.1:{port}", proxied) as lms:
                for course_id in (SAF, ONB, INFO):
                    await lms.get_course(course_id)
    assert proxy.stats.tunnels  # at least one CONNECT, and nothing went around it
    assert set(proxy.stats.tunnels) == {f"127.0.0.1:{port}"}
    assert proxy.stats.refused == 0
    assert app.stats.requests_total == 3


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_refused_proxy_credentials_stop_at_once(
    kind: str, scheme: str, sim_app: Callable[..., Simulator]
) -> None:
    app = sim_app()
    with SimulatorServer(app) as server, ProxyServer(credentials=("svc", "right")) as proxy:
        settings = ProxySettings(proxy=proxy.url_with_credentials("svc", "wrong1"), env={})
        # http: the proxy answers the request 407; https: it refuses the CONNECT.
        url = f"{scheme}://127.0.0.1:{server.port}"
        async with client(url, transport(kind, settings, True)) as lms:
            with pytest.raises(AuthFailure) as caught:
                await lms.get_course(SAF)
    assert caught.value.outcome.http_status == 407
    assert "--proxy http://user:password@host:port" in str(caught.value)
    assert "wrong1" not in str(caught.value)
    assert proxy.stats.refused == 1
    assert app.stats.requests_total == 0


async def test_no_proxy_sends_a_host_direct(sim_app: Callable[..., Simulator]) -> None:
    app = sim_app()
    with SimulatorServer(app) as server, ProxyServer() as proxy:
        settings = ProxySettings(env={"HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"})
        async with client(server.base_url, transport("aiohttp", settings, True)) as lms:
            assert await lms.get_course(SAF) is not None
    assert proxy.stats.requests == []
    assert app.stats.requests_total == 1


def test_without_a_proxy_the_transport_is_not_routed(monkeypatch: pytest.MonkeyPatch) -> None:
    options = ConnectionOptions(api_key="k", concurrency=2)
    assert not isinstance(make_transport(options), ProxyRouter)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    assert isinstance(make_transport(options), ProxyRouter)
    assert not isinstance(make_transport(replace(options, trust_env=False)), ProxyRouter)
    assert not isinstance(make_transport(replace(options, proxy="")), ProxyRouter)


def test_which_proxy_says_what_a_run_will_use(monkeypatch: pytest.MonkeyPatch) -> None:
    options = ConnectionOptions(api_key="k", base_url="https://api.365.systems")
    assert which_proxy(options).describe() == "none: no proxy is configured"
    monkeypatch.setenv("HTTPS_PROXY", "http://svc:hunter22@proxy.corp:3128")
    assert which_proxy(options).describe() == "http://svc:***@proxy.corp:3128 (from HTTPS_PROXY)"
    flag = replace(options, proxy="http://other:8080")
    assert which_proxy(flag).describe() == "http://other:8080 (from --proxy)"
    monkeypatch.setenv("NO_PROXY", ".365.systems")
    assert which_proxy(options).url is None
    assert "hunter22" not in repr(flag) + repr(options)


def test_verbose_logging_names_the_proxy_without_its_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = ConnectionOptions(api_key="k", proxy="http://svc:hunter22@proxy.corp:3128")
    with caplog.at_level(logging.DEBUG, logger="batch_enroll"):
        make_transport(options)
    assert "http://svc:***@proxy.corp:3128 (from --proxy)" in caplog.text
    assert "hunter22" not in caplog.text
