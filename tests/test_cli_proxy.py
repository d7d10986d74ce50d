"""Behind a proxy, through the real CLI: every request goes through it, http and https."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from batch_enroll.simulator import Simulator, SimulatorServer, create_app
from tests.helpers import big_catalog, invoke, read_results, write_sheet
from tests.proxy_server import ProxyServer, dead_port
from tests.tls_server import serve_tls

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
PASSWORD = "Pr0xy-Pa55-w0rd"


@pytest.fixture
def hidden_http() -> Iterator[tuple[str, Simulator, dict[str, tuple[str, int]]]]:
    """A simulator over http that only a proxy can reach: its URL, app and the proxy's route."""
    app = create_app(big_catalog(3))
    with SimulatorServer(app) as server, dead_port() as port:
        yield f"http://127.0.0.1:{port}", app, {f"127.0.0.1:{port}": ("127.0.0.1", server.port)}


@pytest.fixture
def hidden_https(
    tmp_path: Path,
) -> Iterator[tuple[str, Simulator, dict[str, tuple[str, int]], Path]]:
    """The same over https, with the certificate to trust."""
    app = create_app(big_catalog(3))
    with serve_tls(app, tmp_path) as (tls_port, cert), dead_port() as port:
        route = {f"127.0.0.1:{port}": ("127.0.0.1", tls_port)}
        yield f"https://127.0.0.1:{port}", app, route, cert


def run_args(sheet: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    return ["run", str(sheet), "--out", str(out), "--base-url", base_url, "--no-progress", *extra]


def test_http_proxy_from_the_environment_carries_every_request(hidden_http, tmp_path: Path) -> None:
    url, app, route = hidden_http
    out = tmp_path / "r.csv"
    with ProxyServer(routes=route) as proxy:
        # 127.0.0.1 is not exempt: no host is, unless NO_PROXY says so.
        result = invoke(
            *run_args(write_sheet(tmp_path / "s.csv", 3), out, url), HTTP_PROXY=proxy.url
        )
    assert result.exit_code == 0, result.output
    assert {r["status"] for r in read_results(out)} == {"enrolled"}
    assert len(proxy.stats.requests) == app.stats.requests_total > 9
    assert all(f" {url}/" in request for request in proxy.stats.requests)


@needs_openssl
def test_https_through_connect_with_proxy_auth_and_a_ca_bundle(
    hidden_https, tmp_path: Path
) -> None:
    url, app, route, cert = hidden_https
    out = tmp_path / "r.csv"
    with ProxyServer(routes=route, credentials=("svc", PASSWORD)) as proxy:
        result = invoke(
            "-v",
            *run_args(write_sheet(tmp_path / "s.csv", 3), out, url),
            "--proxy",
            proxy.url_with_credentials("svc", PASSWORD),
            "--ca-bundle",
            str(cert),
            "--log-file",
            str(tmp_path / "requests.log"),
        )
    assert result.exit_code == 0, result.output
    assert {r["status"] for r in read_results(out)} == {"enrolled"}
    assert proxy.stats.tunnels
    assert set(proxy.stats.tunnels) == {url.removeprefix("https://")}
    assert proxy.stats.refused == 0
    assert app.stats.requests_total > 9
    for file in tmp_path.iterdir():
        if file.is_file():
            assert PASSWORD.encode() not in file.read_bytes(), file.name
    assert PASSWORD not in result.output


@needs_openssl
def test_validate_reads_the_courses_through_the_proxy(hidden_https, tmp_path: Path) -> None:
    url, app, route, cert = hidden_https
    with ProxyServer(routes=route) as proxy:
        result = invoke(
            "validate",
            str(write_sheet(tmp_path / "s.csv", 1)),
            "--base-url",
            url,
            "--ca-bundle",
            str(cert),
            HTTPS_PROXY=proxy.url,
        )
    assert result.exit_code == 0, result.output
    assert proxy.stats.tunnels
    # The course list once (the sheet names courses by code), then one read per course.
    assert app.stats.requests_total == 4


def test_refused_proxy_credentials_stop_the_run_with_exit_3(hidden_http, tmp_path: Path) -> None:
    url, app, route = hidden_http
    out = tmp_path / "r.csv"
    with ProxyServer(routes=route, credentials=("svc", "right")) as proxy:
        result = invoke(
            *run_args(write_sheet(tmp_path / "s.csv", 3), out, url),
            HTTP_PROXY=proxy.url_with_credentials("svc", PASSWORD),
        )
    assert result.exit_code == 3, result.output
    assert "407" in result.output
    assert "--proxy http://user:password@host:port" in result.output
    assert PASSWORD not in result.output
    assert app.stats.requests_total == 0
    assert {r["status"] for r in read_results(out)} == {"not_attempted"}


def test_no_proxy_sends_the_host_direct(tmp_path: Path) -> None:
    app = create_app(big_catalog(1))
    out = tmp_path / "r.csv"
    with SimulatorServer(app) as server, ProxyServer() as proxy:
        result = invoke(
            *run_args(write_sheet(tmp_path / "s.csv", 1), out, server.base_url),
            HTTP_PROXY=proxy.url,
            NO_PROXY="localhost,127.0.0.0/8",
        )
    assert result.exit_code == 0, result.output
    assert proxy.stats.requests == []
    assert app.stats.requests_total > 0


def test_an_empty_proxy_option_overrides_the_environment(tmp_path: Path) -> None:
    app = create_app(big_catalog(1))
    with SimulatorServer(app) as server, ProxyServer() as proxy:
        result = invoke(
            *run_args(write_sheet(tmp_path / "s.csv", 1), tmp_path / "r.csv", server.base_url),
            "--proxy",
            "",
            HTTP_PROXY=proxy.url,
        )
    assert result.exit_code == 0, result.output
    assert proxy.stats.requests == []


@pytest.mark.parametrize(
    ("where", "value"),
    [("--proxy", f"socks5://svc:{PASSWORD}@proxy:1080"), ("HTTPS_PROXY", "https://proxy:3128")],
)
def test_an_unusable_proxy_is_one_line_and_nothing_is_sent(
    where: str, value: str, tmp_path: Path
) -> None:
    app = create_app(big_catalog(1))
    with SimulatorServer(app) as server:
        args = run_args(write_sheet(tmp_path / "s.csv", 1), tmp_path / "r.csv", server.base_url)
        if where == "--proxy":
            result = invoke(*args, "--proxy", value)
        else:
            result = invoke(*args, **{where: value})
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("batch-enroll: error: ")
    assert where in line
    assert "only http:// proxies" in line
    assert PASSWORD not in line
    assert app.stats.requests_total == 0


def test_an_unreachable_proxy_is_named(tmp_path: Path) -> None:
    app = create_app(big_catalog(1))
    with SimulatorServer(app) as server, dead_port() as port:
        result = invoke(
            *run_args(write_sheet(tmp_path / "s.csv", 1), tmp_path / "r.csv", server.base_url),
            "--max-retries",
            "0",
            "--proxy",
            f"http://svc:{PASSWORD}@127.0.0.1:{port}",
        )
    assert result.exit_code == 1, result.output
    assert "could not connect to the proxy" in result.output
    assert PASSWORD not in result.output
    assert app.stats.requests_total == 0
