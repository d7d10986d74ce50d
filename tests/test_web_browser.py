"""The page in a real browser: headless Chromium against the app and the simulator.

`make test` installs Debian's chromium and chromium-driver when they are missing; these
tests skip, saying why, only where neither is there. Each state of the page is saved as a
screenshot under docs/, which the README shows.
"""

from __future__ import annotations

import csv
import io
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from batch_enroll.runner import RunOptions, validate_sheet
from batch_enroll.simulator import Simulator, SimulatorServer
from batch_enroll.web import create_app
from tests.conftest import FULL_KEY
from tests.test_web_app import HOSTILE, hostile_sheet
from tests.web_helpers import SAMPLE_XLSX, booked, hr_workbook, web_config

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Start headless Chromium with a fresh profile that never reaches the network."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(
            "no Chromium here: install the Debian packages chromium and chromium-driver"
            " (make test does so with apt when it can)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--force-device-scale-factor=1",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    # The console shows any script the page's Content Security Policy refused.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1280, 900)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


@pytest.fixture
def lms(
    sim_app: Callable[..., Simulator], sim_server: Callable[[Simulator], SimulatorServer]
) -> tuple[Simulator, SimulatorServer]:
    # Slow enough that the page shows a run going.
    app = sim_app(latency_ms=250)
    return app, sim_server(app)


@pytest.fixture
def page_url(tmp_path: Path, lms: tuple[Simulator, SimulatorServer]) -> Iterator[tuple[str, Any]]:
    """Serve the web app on a free 127.0.0.1 port, as `batch-enroll serve` does."""
    config = web_config(tmp_path / "data", lms[1].base_url)
    options = RunOptions(base_url=lms[1].base_url, api_key=FULL_KEY, concurrency=2)
    config = web_config(tmp_path / "data", lms[1].base_url, options=options)
    app = create_app(config)
    server = SimulatorServer(app).start()
    try:
        yield server.base_url, app
    finally:
        app.state.runs.shutdown()
        server.stop()


def wait_for(driver: Any, what: Callable[[Any], Any], timeout: float = 30.0) -> Any:
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(what)
    except TimeoutException:
        alert = driver.find_element(By.ID, "alert")
        raise AssertionError(f"page did not get there; its alert says: {alert.text!r}") from None


def shown(element_id: str) -> Callable[[Any], bool]:
    return lambda d: d.find_element(By.ID, element_id).is_displayed()


def counts_on_page(driver: Any, box: str) -> dict[str, int]:
    # Read in one go: the page redraws the tiles twice a second while a run goes.
    found: dict[str, int] = driver.execute_script(
        "const out = {};"
        f"for (const t of document.querySelectorAll('#{box} .count'))"
        " out[t.dataset.status] = parseInt(t.querySelector('b').textContent, 10);"
        "return out;"
    )
    return found


def screenshot(driver: Any, name: str) -> None:
    DOCS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height), 800), 1300))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(DOCS / f"serve-{name}.png"))
    driver.set_window_size(1280, 900)


def test_check_enroll_watch_and_download_in_a_browser(
    browser: Any, page_url: tuple[str, Any], lms: tuple[Simulator, SimulatorServer]
) -> None:
    url, _app = page_url
    options = RunOptions(base_url=lms[1].base_url, api_key=FULL_KEY)
    expected = validate_sheet(SAMPLE_XLSX, report=None, options=options)
    sendable = expected.counts["ok"] + expected.counts["warning"]

    browser.get(url)
    wait_for(browser, shown("drop"))
    assert browser.execute_script("return document.scripts.length") == 1
    screenshot(browser, "upload")

    browser.find_element(By.ID, "file").send_keys(str(SAMPLE_XLSX))
    wait_for(browser, shown("checked-card"))
    on_page = counts_on_page(browser, "check-counts")
    assert on_page == {s: n for s, n in expected.counts.items() if n or s in ("ok", "invalid")}
    enroll = browser.find_element(By.ID, "enroll")
    assert enroll.text == f"Enroll {sendable} rows"
    assert enroll.is_enabled()
    rows = browser.find_elements(By.CSS_SELECTOR, "#rows tbody tr")
    assert len(rows) == expected.rows
    # The sheet's own columns are there, and problems say what to do.
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#rows thead th")]
    assert {"department", "manager"} <= set(headers)
    assert "What to do" in headers
    browser.find_element(By.ID, "only-problems").click()
    problems = browser.find_elements(By.CSS_SELECTOR, "#rows tbody tr")
    assert len(problems) == expected.rows - expected.counts["ok"]
    browser.find_element(By.ID, "group-course").click()
    assert browser.find_elements(By.CSS_SELECTOR, "#rows tbody tr.group")
    screenshot(browser, "checked")
    browser.find_element(By.ID, "only-problems").click()
    browser.find_element(By.ID, "group-course").click()

    enroll.click()
    wait_for(browser, shown("confirm"))
    confirm = browser.find_element(By.ID, "confirm-text").text
    assert f"{sendable} rows" in confirm
    assert "unenrollment" in confirm
    browser.find_element(By.ID, "confirm-go").click()
    wait_for(browser, shown("run-card"))
    wait_for(browser, lambda d: counts_on_page(d, "run-counts").get("enrolled", 0) > 0)
    assert browser.find_element(By.ID, "run-state").text == "running"
    screenshot(browser, "running")

    # The run lives on the server: a reload finds it again.
    browser.refresh()
    wait_for(browser, shown("run-card"))
    first = int(browser.find_element(By.ID, "run-done").text)
    wait_for(browser, lambda d: d.find_element(By.ID, "run-state").text != "running", 90)
    assert browser.find_element(By.ID, "run-state").text == "done"
    assert int(browser.find_element(By.ID, "run-done").text) >= first
    assert browser.find_element(By.ID, "run-total").text == str(sendable)
    assert browser.find_element(By.ID, "run-done").text == str(sendable)
    run_counts = counts_on_page(browser, "run-counts")
    assert sum(run_counts.values()) == expected.rows
    codes = [
        c.get_attribute("data-code")
        for c in browser.find_elements(By.CSS_SELECTOR, ".problem-card")
    ]
    assert codes
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#history tbody tr"))
    wait_for(browser, shown("results-part"))
    shown_rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    assert len(shown_rows) == expected.rows
    browser.find_element(By.ID, "res-only-problems").click()
    screenshot(browser, "done")

    csv_link = browser.find_element(By.ID, "dl-csv").get_attribute("href")
    xlsx_link = browser.find_element(By.ID, "dl-xlsx").get_attribute("href")
    with httpx.Client() as http:
        results = list(csv.DictReader(io.StringIO(http.get(csv_link).text)))
        book = openpyxl.load_workbook(io.BytesIO(http.get(xlsx_link).content))
    assert len(results) == expected.rows
    tally: dict[str, int] = {}
    for row in results:
        tally[row["status"]] = tally.get(row["status"], 0) + 1
    assert tally == run_counts
    assert sorted(
        {r["error_code"] for r in results if r["status"] in ("invalid", "failed")}
    ) == sorted(codes)
    sheet = book.active
    assert sheet.freeze_panes == "A2"
    table = list(sheet.iter_rows(values_only=True))
    assert len(table) == expected.rows + 1
    assert [str(r[4]) for r in table[1:]] == [r["status"] for r in results]
    simulator = lms[0]
    assert sum(simulator.creations.values()) == booked(tally)
    console = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert console == []


def test_stop_and_resume_from_the_page(
    browser: Any, page_url: tuple[str, Any], lms: tuple[Simulator, SimulatorServer]
) -> None:
    url, _app = page_url
    browser.get(url)
    browser.find_element(By.ID, "file").send_keys(str(SAMPLE_XLSX))
    wait_for(browser, shown("checked-card"))
    browser.find_element(By.ID, "enroll").click()
    wait_for(browser, shown("confirm"))
    browser.find_element(By.ID, "confirm-go").click()
    wait_for(browser, lambda d: counts_on_page(d, "run-counts").get("enrolled", 0) > 0)
    browser.find_element(By.ID, "stop").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "run-state").text == "stopped")
    assert "not_attempted" in counts_on_page(browser, "run-counts")
    assert "Resume" in browser.find_element(By.ID, "run-error").text
    wait_for(browser, shown("resume"))
    browser.find_element(By.ID, "resume").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "run-state").text == "done", 90)
    counts = counts_on_page(browser, "run-counts")
    assert "not_attempted" not in counts
    assert set(lms[0].creations.values()) == {1}
    assert sum(lms[0].creations.values()) == booked(counts)


def test_the_page_names_the_sheet_read_and_reads_another(
    browser: Any, page_url: tuple[str, Any], lms: tuple[Simulator, SimulatorServer], tmp_path: Path
) -> None:
    url, _app = page_url
    options = RunOptions(base_url=lms[1].base_url, api_key=FULL_KEY)
    report = validate_sheet(SAMPLE_XLSX, report=None, options=options).results
    assert report is not None
    ready = report[report["status"] == "ok"].head(5)
    people = list(zip(ready["course_id"], ready["user_login_name"], strict=True))
    path = hr_workbook(tmp_path / "hr.xlsx", people)
    browser.get(url)
    browser.find_element(By.ID, "file").send_keys(str(path))
    wait_for(browser, shown("checked-card"))
    read = browser.find_element(By.ID, "sheet-read").text
    assert '"Hires"' in read
    assert "row 3" in read
    assert len(browser.find_elements(By.CSS_SELECTOR, "#rows tbody tr")) == 2
    pick = browser.find_element(By.ID, "sheet-pick")
    assert [o.text for o in pick.find_elements(By.TAG_NAME, "option")] == [
        "Instructions",
        "Hires",
        "Later",
    ]
    pick.find_element(By.CSS_SELECTOR, "option[value='Later']").click()
    later = len(people) - 2
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rows tbody tr")) == later)
    assert browser.find_element(By.ID, "sheet-pick").get_attribute("value") == "Later"
    assert browser.find_element(By.ID, "sheet-read").text != read
    assert browser.find_element(By.ID, "enroll").text == f"Enroll {len(people) - 2} rows"


def test_markup_in_cells_stays_text_in_the_browser(
    browser: Any, page_url: tuple[str, Any], tmp_path: Path
) -> None:
    url, _app = page_url
    sheet = hostile_sheet(tmp_path / "hostile.csv")
    browser.get(url)
    browser.find_element(By.ID, "file").send_keys(str(sheet))
    wait_for(browser, shown("checked-card"))
    time.sleep(0.2)
    table = browser.find_element(By.ID, "rows")
    assert table.find_elements(By.TAG_NAME, "script") == []
    assert table.find_elements(By.TAG_NAME, "img") == []
    assert browser.execute_script("return document.scripts.length") == 1
    assert browser.execute_script("return document.querySelectorAll('[onerror]').length") == 0
    text = table.text
    for cell in HOSTILE:
        assert cell in text
    header = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert "<b>note</b>" in header
    console = " ".join(e["message"] for e in browser.get_log("browser"))
    assert "Content Security Policy" not in console


def test_a_bad_file_shows_the_one_line_error(
    browser: Any, page_url: tuple[str, Any], tmp_path: Path
) -> None:
    url, _app = page_url
    bad = tmp_path / "hires.csv"
    bad.write_text("name,department\nKay,Sales\n", encoding="utf-8")
    browser.get(url)
    browser.find_element(By.ID, "file").send_keys(str(bad))
    wait_for(browser, shown("alert"))
    message = browser.find_element(By.ID, "alert").text
    assert message.startswith("hires.csv: ")
    assert str(tmp_path) not in message
    assert not browser.find_element(By.ID, "checked-card").is_displayed()
