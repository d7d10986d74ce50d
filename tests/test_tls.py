"""TLS: certificates are verified, and --ca-bundle trusts a corporate proxy's CA."""

from __future__ import annotations

import csv
import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from batch_enroll.cli import main
from batch_enroll.simulator import Simulator, create_app, load_catalog
from tests.conftest import FULL_KEY, SAMPLE_CATALOG
from tests.tls_server import serve_tls

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path, Simulator]]:
    """Serve the simulator over HTTPS with a self-signed certificate for 127.0.0.1."""
    app = create_app(load_catalog(SAMPLE_CATALOG))
    with serve_tls(app, tmp_path) as (port, cert):
        yield f"https://127.0.0.1:{port}", cert, app


def sheet(tmp_path: Path) -> Path:
    path = tmp_path / "s.csv"
    path.write_text("course_id,email\n101,noah.kim@contoso.com\n", encoding="utf-8")
    return path


def statuses(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [row["status"] for row in csv.DictReader(handle)]


def test_an_untrusted_certificate_is_refused(tls_server, tmp_path: Path) -> None:
    url, _, app = tls_server
    out = tmp_path / "r.csv"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(sheet(tmp_path)),
            "--out",
            str(out),
            "--base-url",
            url,
            "--no-progress",
            "--max-retries",
            "0",
        ],
        env={"LMS365_API_KEY": FULL_KEY},
    )
    assert result.exit_code == 1, result.output
    assert statuses(out) == ["not_attempted"]
    assert "could not reach LMS365" in result.output
    assert "--ca-bundle" in result.output
    assert app.stats.to_dict()["enrollments_created"] == 0


def test_ca_bundle_trusts_the_proxy_certificate(tls_server, tmp_path: Path) -> None:
    url, cert, app = tls_server
    out = tmp_path / "r.csv"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(sheet(tmp_path)),
            "--out",
            str(out),
            "--base-url",
            url,
            "--no-progress",
            "--ca-bundle",
            str(cert),
        ],
        env={"LMS365_API_KEY": FULL_KEY},
    )
    assert result.exit_code == 0, result.output
    assert statuses(out) == ["enrolled"]
    assert app.stats.to_dict()["enrollments_created"] == 1
    trusted = ssl.create_default_context(cafile=str(cert))
    assert httpx.get(f"{url}/_sim/stats", verify=trusted).status_code == 200
