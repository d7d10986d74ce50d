"""``batch-enroll doctor`` connects as a run does: its proxy, its key file, its TLS trust.

Through the real CLI, against the simulator, behind the test proxy. The simulator's URL
is a port nothing listens on that only the proxy knows the way to, so a request that
went around the proxy fails instead of passing unnoticed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from batch_enroll.cli import main
from batch_enroll.doctor import FAILED, OK, SKIPPED, TITLES
from batch_enroll.simulator import Simulator, SimulatorServer
from tests.conftest import FULL_KEY
from tests.proxy_server import ProxyServer, dead_port
from tests.test_doctor import statuses_of
from tests.tls_server import serve_tls

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
PASSWORD = "Pr0xy-Pa55-w0rd"


def doctor(*args: str, **env: str) -> Result:
    """Invoke ``batch-enroll doctor`` with only the environment given."""
    return CliRunner().invoke(main, ["doctor", *args], env=env)


def line_of(output: str, title: str) -> str:
    """Return the output line of the check titled ``title``."""
    return next(line for line in output.splitlines() if line[9:].startswith(title))


@pytest.fixture
def hidden_http(sim_app: Any) -> Iterator[tuple[str, Simulator, dict[str, tuple[str, int]]]]:
    """A simulator over http that only a proxy can reach: its URL, app and the proxy's route."""
    app = sim_app()
    with SimulatorServer(app) as server, dead_port() as port:
        yield f"http://127.0.0.1:{port}", app, {f"127.0.0.1:{port}": ("127.0.0.1", server.port)}


@pytest.fixture
def hidden_https(
    sim_app: Any, tmp_path: Path
) -> Iterator[tuple[str, Simulator, dict[str, tuple[str, int]], Path]]:
    """The same over https, with the certificate to trust."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    app = sim_app()
    with serve_tls(app, tmp_path) as (tls_port, cert), dead_port() as port:
        route = {f"127.0.0.1:{port}": ("127.0.0.1", tls_port)}
        yield f"https://127.0.0.1:{port}", app, route, cert


def key_file(folder: Path) -> Path:
    path = folder / "lms365.key"
    path.write_text(FULL_KEY + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def test_every_request_goes_through_the_proxy_from_the_environment(hidden_http) -> None:
    url, app, route = hidden_http
    with ProxyServer(routes=route) as proxy:
        result = doctor("--base-url", url, LMS365_API_KEY=FULL_KEY, HTTP_PROXY=proxy.url)
    assert result.exit_code == 0, result.output
    assert statuses_of(result.output) == dict.fromkeys(TITLES.values(), OK)
    assert f"{proxy.url} (from HTTP_PROXY)" in line_of(result.output, "Proxy")
    assert "reached through" in line_of(result.output, "Host reachable")
    # Each of doctor's requests, the read-only probe included, was carried by the proxy.
    assert len(proxy.stats.requests) == app.stats.requests_total >= 5
    assert all(request.split(" ", 1)[1].startswith(f"{url}/") for request in proxy.stats.requests)
    assert app.stats.to_dict()["enrollments_created"] == 0


def test_https_through_a_tunnel_with_proxy_auth_a_ca_bundle_and_a_key_file(
    hidden_https, tmp_path: Path
) -> None:
    url, app, route, cert = hidden_https
    with ProxyServer(routes=route, credentials=("svc", PASSWORD)) as proxy:
        result = doctor(
            "--base-url",
            url,
            "--api-key-file",
            str(key_file(tmp_path)),
            "--proxy",
            proxy.url_with_credentials("svc", PASSWORD),
            "--ca-bundle",
            str(cert),
            "--json",
        )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert FULL_KEY not in result.output
    report = json.loads(result.output)
    checks = {check["name"]: check for check in report["checks"]}
    assert list(checks) == list(TITLES)
    assert {check["status"] for check in checks.values()} == {OK}
    authority = url.removeprefix("https://")
    assert checks["proxy"]["detail"].startswith(
        f"http://svc:***@127.0.0.1:{proxy.port} (from --proxy): it opened a tunnel to {authority}"
    )
    assert checks["tls"]["detail"].startswith("TLSv1.")
    # Nothing went around the proxy (nothing listens at the URL itself), and every
    # tunnel went where the run's would.
    assert set(proxy.stats.tunnels) == {authority}
    assert len(proxy.stats.tunnels) >= 3  # the proxy check, the handshake, the API's
    assert proxy.stats.refused == 0
    assert app.stats.requests_total >= 5


def test_a_key_file_from_the_environment_is_used(hidden_http, tmp_path: Path) -> None:
    url, app, route = hidden_http
    with ProxyServer(routes=route) as proxy:
        result = doctor(
            "--base-url",
            url,
            "--proxy",
            proxy.url,
            LMS365_API_KEY_FILE=str(key_file(tmp_path)),
        )
    assert result.exit_code == 0, result.output
    assert statuses_of(result.output)["API key accepted"] == OK
    assert f"{proxy.url} (from --proxy)" in line_of(result.output, "Proxy")
    assert len(proxy.stats.requests) == app.stats.requests_total >= 5
    assert FULL_KEY not in result.output


def test_a_wrong_key_in_the_key_file_exits_3(hidden_http, tmp_path: Path) -> None:
    url, _, route = hidden_http
    wrong = tmp_path / "wrong.key"
    wrong.write_text("not-the-key-0000\n", encoding="utf-8")
    wrong.chmod(0o600)
    with ProxyServer(routes=route) as proxy:
        result = doctor("--base-url", url, "--api-key-file", str(wrong), HTTP_PROXY=proxy.url)
    assert result.exit_code == 3, result.output
    assert statuses_of(result.output)["API key accepted"] == FAILED
    assert "not-the-key-0000" not in result.output


def test_refused_proxy_credentials_on_connect_fail_the_proxy_line(hidden_http) -> None:
    url, app, route = hidden_http
    https_url = url.replace("http://", "https://")  # the proxy refuses before any handshake
    with ProxyServer(routes=route, credentials=("svc", "right")) as proxy:
        result = doctor(
            "--base-url",
            https_url,
            LMS365_API_KEY=FULL_KEY,
            HTTPS_PROXY=proxy.url_with_credentials("svc", PASSWORD),
        )
    assert result.exit_code == 1, result.output
    found = statuses_of(result.output)
    assert found.pop("Proxy") == FAILED
    assert set(found.values()) == {SKIPPED}
    proxy_line = line_of(result.output, "Proxy")
    assert f"http://svc:***@127.0.0.1:{proxy.port} (from HTTPS_PROXY)" in proxy_line
    assert "asked for credentials or refused them (HTTP 407" in proxy_line
    assert "what to do: check the proxy's user and password in HTTPS_PROXY" in result.output
    assert PASSWORD not in result.output
    assert proxy.stats.refused == 1
    assert app.stats.requests_total == 0


def test_a_proxy_without_credentials_is_told_where_to_put_them(hidden_http) -> None:
    url, app, route = hidden_http
    with ProxyServer(routes=route, credentials=("svc", "right")) as proxy:
        # Plain http: the proxy answers the request itself with 407.
        result = doctor("--base-url", url, "--proxy", proxy.url, LMS365_API_KEY=FULL_KEY)
    assert result.exit_code == 1, result.output
    key_line = line_of(result.output, "API key accepted")
    assert key_line.startswith(FAILED)
    assert "the proxy asked for credentials or refused them (HTTP 407)" in key_line
    shape = f"http://user:password@127.0.0.1:{proxy.port}"
    assert f"what to do: give the proxy's user and password: --proxy {shape}" in result.output
    assert statuses_of(result.output)["Courses page"] == SKIPPED
    assert app.stats.requests_total == 0


def test_no_proxy_sends_the_host_direct_and_says_so(sim_app) -> None:
    app = sim_app()
    with SimulatorServer(app) as server, ProxyServer() as proxy:
        result = doctor(
            "--base-url",
            server.base_url,
            LMS365_API_KEY=FULL_KEY,
            HTTP_PROXY=proxy.url,
            NO_PROXY="localhost,127.0.0.1",
        )
    assert result.exit_code == 0, result.output
    assert "none: the NO_PROXY entry '127.0.0.1' sends it direct" in line_of(result.output, "Proxy")
    assert proxy.stats.requests == []
    assert proxy.stats.tunnels == []
    assert app.stats.requests_total >= 5


def test_no_proxy_configured_is_said(sim_app) -> None:
    server = SimulatorServer(sim_app()).start()
    try:
        result = doctor("--base-url", server.base_url, LMS365_API_KEY=FULL_KEY)
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    assert "none: no proxy is configured" in line_of(result.output, "Proxy")


def test_an_unreachable_proxy_fails_and_nothing_else_is_tried(hidden_http) -> None:
    url, app, _ = hidden_http
    with dead_port() as port:
        result = doctor(
            "--base-url",
            url,
            "--proxy",
            f"http://svc:{PASSWORD}@127.0.0.1:{port}",
            LMS365_API_KEY=FULL_KEY,
        )
    assert result.exit_code == 1, result.output
    proxy_line = line_of(result.output, "Proxy")
    assert proxy_line.startswith(FAILED)
    assert "cannot be reached" in proxy_line
    assert "check the proxy in --proxy" in result.output
    assert set(statuses_of(result.output).values()) == {FAILED, SKIPPED}
    assert PASSWORD not in result.output
    assert app.stats.requests_total == 0


def test_an_unusable_proxy_setting_is_one_line_and_exit_2() -> None:
    result = doctor(
        "--base-url",
        "http://127.0.0.1:9",
        "--proxy",
        f"socks5://svc:{PASSWORD}@proxy:1080",
        LMS365_API_KEY=FULL_KEY,
    )
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1
    assert "only http:// proxies" in result.output
    assert PASSWORD not in result.output


def test_a_key_file_others_can_read_is_used_with_a_warning(sim_app, tmp_path: Path) -> None:
    path = key_file(tmp_path)
    path.chmod(0o644)
    with SimulatorServer(sim_app()) as server:
        result = doctor("--base-url", server.base_url, "--api-key-file", str(path))
    assert result.exit_code == 0, result.output
    assert "can be read by other users (mode 0644)" in result.output
    assert FULL_KEY not in result.output
