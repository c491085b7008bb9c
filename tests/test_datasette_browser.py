"""A desk's view of the archive in a real browser: Datasette as a process, Chromium via Selenium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_datasette import fill_archive

pytest.importorskip("datasette")
webdriver = pytest.importorskip("selenium.webdriver")

pytestmark = pytest.mark.slow


def _browser() -> tuple[str, str]:
    """Debian's chromium and chromium-driver (scripts/test.sh installs them)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        message = "needs Debian's chromium and chromium-driver (bash scripts/test.sh installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # in CI the browser test must run, not be skipped
        pytest.skip(message)
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def datasette_url(tmp_path: Path) -> Iterator[str]:
    db = tmp_path / "desk-archive.db"
    fill_archive(tmp_path, db)
    port = _free_port()
    exe = Path(sys.executable).with_name("datasette")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "datasette"]
    # A real `datasette` process, as a desk would start it: no metadata, no options.
    proc = subprocess.Popen(
        [*cmd, "serve", str(db), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/versions.json", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    pytest.fail(f"datasette did not start: {err}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver = _browser()
    options = Options()
    options.binary_location = chromium
    # As root, and on a closed network: without the background-networking flags Chromium's
    # own calls home are refused and its connections fail with them.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chromium-profile'}"):  # fmt: skip
        options.add_argument(flag)
    service = Service(executable_path=driver, log_output=str(tmp_path / "chromedriver.log"))
    b = webdriver.Chrome(options=options, service=service)
    b.set_page_load_timeout(30)
    try:
        yield b
    finally:
        b.quit()


def test_desk_searches_posts_and_reads_highlighted_matches(datasette_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{datasette_url}/desk-archive/posts")
    headers = [
        th.get_attribute("data-column") for th in browser.find_elements(By.CSS_SELECTOR, "th")
    ]
    assert headers[:4] == ["title", "source_id", "published_at", "url"]

    box = browser.find_element(By.ID, "_search")
    box.send_keys("войск*", Keys.ENTER)  # a prefix in Cyrillic, folded as the monitor folds it
    # The search is a new page: read its rows once it has loaded, not the old page's.
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(
        lambda b: (
            "_search=" in b.current_url
            and b.execute_script("return document.readyState") == "complete"
        )
    )
    titles = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "td.col-title")]
    assert titles == ["Песков: размещение войск НАТО на Украине означало бы прямой конфликт"]
    browser.save_screenshot(str(tmp_path / "posts-search.png"))

    browser.get(f"{datasette_url}/desk-archive/-/latest-matches")
    browser.find_element(By.LINK_TEXT, "nato-troops-ukraine").click()
    rows = browser.find_elements(By.CSS_SELECTOR, "table.monitor-matches tbody tr")
    assert len(rows) >= 4
    video = next(r for r in rows if "trt-world-youtube" in r.text)
    link = video.find_element(By.CSS_SELECTOR, "td.title a")
    assert link.get_attribute("href").endswith("watch?v=Lq3mXo9vT2k&t=17s")
    marks = video.find_elements(By.CSS_SELECTOR, "td.snippet mark")
    assert [m.text for m in marks][:3] == ["NATO", "troops", "Ukraine"]
    for mark in marks:
        assert mark.is_displayed() and mark.size["width"] > 0
        # Highlighted, not merely tagged: the page's style gives marks a background.
        assert mark.value_of_css_property("background-color") not in ("rgba(0, 0, 0, 0)", "")
    hostile = next(r for r in rows if "UPDATE 2" in r.text)
    assert "<img src=x onerror=alert(1)>" in hostile.text  # shown as text, never run
    assert not hostile.find_elements(By.CSS_SELECTOR, "img")
    shot = tmp_path / "latest-matches.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
