"""The HTML report in a real headless Chromium: at 1280 px, on a 390 px phone, printed on A4.

Chromium and chromedriver come from Debian's packages (`make test` installs them when
missing); Selenium drives them through the DevTools protocol, the only way below the
~500 px that headless Chromium's own window allows. Full-page screenshots are kept in
build/test-artifacts/browser/ (or $ESMS_TEST_ARTIFACTS) for a person to look at.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from esms_analytics.bundle import Bundle, Selection, write_report
from esms_analytics.lake import read_lake

from .conftest import REPORT_END, REPORT_START

ARTIFACTS = Path(
    os.environ.get(
        "ESMS_TEST_ARTIFACTS",
        Path(__file__).resolve().parents[1] / "build" / "test-artifacts",
    )
)
#: (name, CSS pixels wide, media): a laptop, a phone, and an A4 page printed at 96 dpi
#: less 12 mm margins on each side.
VIEWS = [("desktop", 1280, "screen"), ("phone", 390, "screen"), ("a4", 703, "print")]


def _browser_paths() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        message = (
            "Chromium is missing: apt-get install -y chromium chromium-driver (make test does)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return chromium, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(argument)
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield session
    finally:
        session.quit()


@pytest.fixture(scope="module")
def page(report_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Bundle]:
    path = tmp_path_factory.mktemp("browser") / "report.html"
    bundle = write_report(
        read_lake(report_lake),
        path,
        Selection(REPORT_START, REPORT_END),
        source=str(report_lake),
    )
    return path, bundle


MEASURE = """
const tables = Array.from(document.querySelectorAll("table")).map(t => ({
  section: t.closest("section").id,
  rows: t.tBodies[0].rows.length + (t.tFoot ? t.tFoot.rows.length : 0),
  boxRight: t.closest(".table-box").getBoundingClientRect().right,
}));
const images = Array.from(document.images).map(i => ({
  complete: i.complete, width: i.naturalWidth, right: i.getBoundingClientRect().right,
}));
const headlines = Array.from(document.querySelectorAll(".headline")).map(
  h => h.getBoundingClientRect().right);
return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
        height: document.documentElement.scrollHeight, tables, images, headlines};
"""


def _show(browser: Any, path: Path, width: int, media: str) -> dict[str, Any]:
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500},
    )
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": media})
    browser.get(path.as_uri())
    browser.execute_async_script(
        "const done = arguments[0];"
        "Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))"
        ".then(() => done());"
    )
    result: dict[str, Any] = browser.execute_script(MEASURE)
    return result


def _screenshot(browser: Any, name: str, width: int, height: int) -> Path:
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"report-{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("name", "width", "media"), VIEWS, ids=[view[0] for view in VIEWS])
def test_the_page_fits_holds_every_row_and_loads_every_image(
    browser: Any, page: tuple[Path, Bundle], name: str, width: int, media: str
) -> None:
    path, bundle = page
    seen = _show(browser, path, width, media)
    shot = _screenshot(browser, name, width, seen["height"])
    assert shot.stat().st_size > 10_000
    assert seen["innerWidth"] == width
    assert seen["scrollWidth"] <= seen["innerWidth"], "the page scrolls sideways"
    rows = {table["section"]: table["rows"] for table in seen["tables"]}
    assert rows == {section: table.height for section, table in bundle.tables.items()}
    assert all(table["boxRight"] <= width for table in seen["tables"])
    assert len(seen["images"]) == len(bundle.tables)
    for image in seen["images"]:
        assert image["complete"]
        assert image["width"] > 0
        assert image["right"] <= width
    assert all(right <= width for right in seen["headlines"])


@pytest.mark.slow
def test_a_click_on_a_header_sorts_the_table(browser: Any, page: tuple[Path, Bundle]) -> None:
    from selenium.webdriver.common.by import By

    path, bundle = page
    _show(browser, path, 1280, "screen")
    header = browser.find_element(By.XPATH, "//section[@id='delivery']//th[text()='messages']")
    read = (
        "return Array.from(document.querySelectorAll('#delivery tbody tr'))"
        ".map(r => Number(r.cells[1].dataset.v))"
    )
    messages = bundle.tables["delivery"]["messages"].to_list()
    assert browser.execute_script(read) == messages  # the report's order: largest first
    header.click()
    assert browser.execute_script(read) == sorted(messages)
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert browser.execute_script(read) == sorted(messages, reverse=True)


def test_make_test_installs_chromium_from_debian_when_missing() -> None:
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text("utf-8")
    prerequisites = re.search(r"^test:(.*)$", makefile, re.MULTILINE)
    assert prerequisites is not None
    assert "browser" in prerequisites[1].split()
    recipe = makefile.split("\nbrowser:\n")[1].split("\n\n")[0]
    assert "command -v chromium" in recipe
    assert "apt-get update && apt-get install -y chromium chromium-driver" in recipe
