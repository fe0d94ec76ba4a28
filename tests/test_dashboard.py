"""A student's view of a dashboard: Voila serves the quickstart Explore app (course/apps/) in
headless Chromium, with no code shown; moving the slider redraws the figure; the server is
stopped at the end. Skipped with a one-line reason when Chromium, Playwright or Voila is missing."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, _skip_reason

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
FIGURE = ".widget-output img"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila(tmp_path):
    pytest.importorskip("voila", reason="voila is in the 'course' extra")
    port = _free_port()
    env = {
        **os.environ,
        "IPKIT_QUIET": "1",
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    log = open(tmp_path / "voila.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voila",
            str(ROOT / "course/apps/quickstart.ipynb"),
            f"--port={port}",
            "--no-browser",
            "--Voila.ip=127.0.0.1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/voila/static/voila.js", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_voila_app_slider_redraws_figure(voila):
    if reason := _skip_reason():
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.goto(voila, timeout=300_000)
        page.wait_for_selector(FIGURE, timeout=300_000)
        text = page.inner_text("body")
        assert "ipkit.start" not in text, "code is shown"
        assert "explore_cell(" not in text, "code is shown"
        assert "Traceback" not in text, text[-2000:]
        assert "Error" not in text, text[-2000:]
        before = page.locator(FIGURE).first.get_attribute("src")
        page.locator(".widget-slider .noUi-handle").first.focus()
        page.keyboard.press("PageUp")
        for _ in range(600):  # a new query budget trains one thief (seconds at class size)
            if page.locator(FIGURE).count() and page.locator(FIGURE).first.get_attribute("src") != before:
                break
            page.wait_for_timeout(500)
        else:
            pytest.fail("the figure did not change after the slider moved")
        browser.close()
