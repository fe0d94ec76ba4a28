"""A person's view in a real browser: JupyterLab in headless Chromium (driven by Playwright)
runs a small Explore notebook, moves its slider, saves and reopens it; then the documentation
site (`make docs`) is opened from disk with the network off. Uses the system Chromium and never downloads a browser;
skipped with a one-line reason when Chromium or Playwright is missing."""

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from ipkit.notebook import publish

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# What `make setup` writes into the venv, plus no news or update checks from the test's lab.
LAB_OVERRIDES = {
    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
    "@jupyterlab/apputils-extension:notification": {"checkForUpdates": False, "fetchNews": "false"},
}
OUTPUT_IMG = ".jp-OutputArea .widget-output img"


def _skip_reason() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"no {CHROMIUM}: `make setup` as root installs Debian's chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "no playwright: pip install -c constraints.txt -e '.[test]'"
    return None


@pytest.fixture(scope="module")
def browser():
    if reason := _skip_reason():
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 (random port, a token, a temporary root and settings)."""
    tmp = tmp_path_factory.mktemp("lab")
    root, settings = tmp / "root", tmp / "settings"
    root.mkdir()
    settings.mkdir()
    (settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES))
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.app_settings_dir={settings}",
        f"--LabApp.user_settings_dir={tmp / 'user-settings'}",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.extension_manager=readonly",
        "--allow-root",
    ]
    log = open(tmp / "lab.log", "w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{url}/api/status?token={token}", server, tmp / "lab.log")
        yield {"url": url, "token": token, "root": root}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _wait_until_up(status_url: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if server.poll() is not None:
            raise RuntimeError(f"jupyter lab exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(status_url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"jupyter lab did not answer in {timeout} s: {log.read_text()[-2000:]}")


def _api(lab, method: str, path: str):
    req = urllib.request.Request(
        f"{lab['url']}{path}", method=method, headers={"Authorization": f"token {lab['token']}"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


def _command(page, name: str) -> None:
    page.evaluate("name => window.jupyterapp.commands.execute(name)", name)


def _open_notebook(page, lab, name: str) -> None:
    page.goto(f"{lab['url']}/lab/tree/{name}?token={lab['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)


def _figure(page) -> str:
    return page.get_attribute(OUTPUT_IMG, "src")


def test_explore_panel_in_jupyterlab_survives_save_and_reload_and_publishes(browser, lab, explore_notebook):
    nbformat.write(explore_notebook, lab["root"] / "explore.ipynb")
    page = browser.new_page()
    _open_notebook(page, lab, "explore.ipynb")
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel")
    _command(page, "notebook:run-all-cells")
    page.wait_for_selector(OUTPUT_IMG, timeout=90_000)
    assert page.locator(".widget-slider").count() == 1, "one Explore panel"
    before = _figure(page)

    page.locator(".widget-slider .noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"src => document.querySelector('{OUTPUT_IMG}')?.src !== src", arg=before, timeout=30_000)
    assert page.locator(".widget-slider").count() == 1
    assert page.locator(".widget-output .jp-OutputArea-output").count() == 1, "only the figure"
    assert page.locator(".widget-readout").first.inner_text().strip() == "3"

    _command(page, "docmanager:save")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    saved = nbformat.read(lab["root"] / "explore.ipynb", as_version=4)
    assert "widgets" in saved.metadata, "JupyterLab saved the widget state"
    for session in _api(lab, "GET", "/api/sessions"):
        _api(lab, "DELETE", f"/api/sessions/{session['id']}")

    page.reload()
    page.wait_for_selector(OUTPUT_IMG, timeout=60_000)
    page.wait_for_timeout(1000)
    assert "Error displaying widget" not in page.inner_text("body")
    assert page.locator(".widget-slider").count() == 1

    publish.publish(lab["root"] / "explore.ipynb", lab["root"] / "published.ipynb")
    _open_notebook(page, lab, "published.ipynb")
    page.wait_for_selector(".jp-NotebookPanel >> visible=true >> .jp-OutputArea-output img", timeout=60_000)
    page.wait_for_timeout(1000)
    assert "Error displaying widget" not in page.inner_text("body")
    shown = page.locator(".jp-NotebookPanel >> visible=true")
    assert "Explore: bars = 2" in shown.inner_text()
    assert shown.locator(".widget-slider").count() == 0
    page.close()


@pytest.fixture(scope="module")
def docs_site(tmp_path_factory):
    """The documentation site built from the committed figures (as `make docs`)."""
    from ipkit import cli
    from ipkit.core.paths import repo_root

    out = tmp_path_factory.mktemp("site")
    saved = os.environ.get("IPKIT_FIGURES")
    os.environ["IPKIT_FIGURES"] = str(repo_root() / "figures")
    try:
        assert cli.build_site(out) == 0
    finally:
        os.environ.pop("IPKIT_FIGURES") if saved is None else os.environ.update(IPKIT_FIGURES=saved)
    return out


def _not_blank(png: bytes) -> bool:
    import io

    from PIL import Image

    colours = Image.open(io.BytesIO(png)).convert("RGB").getcolors(maxcolors=1 << 16)
    return colours is None or len(colours) > 20


def test_docs_site_renders_offline(browser, docs_site):
    """The built index and a study page open from disk: they render (a screenshot that is
    not blank), every figure loads, the study page links its executed notebook, and no
    request leaves file://."""
    context = browser.new_context(offline=True)
    remote = []
    context.route(re.compile(r"^(?!file:|data:)"), lambda route: (remote.append(route.request.url), route.abort()))
    page = context.new_page()
    study = docs_site / "_generated" / "studies" / "modeldiff.html"
    for html in (docs_site / "index.html", study):
        page.goto(html.as_uri())
        page.wait_for_load_state("load")
        assert _not_blank(page.screenshot(full_page=False)), f"{html.name} rendered blank"
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        assert all(w > 0 for w in widths), f"{html.name}: image widths {widths}"
    assert len(widths) >= 3
    assert "does not hold" in page.inner_text("main")
    page.click("main a[href$='default/04_modeldiff.html']")
    page.wait_for_load_state("load")
    assert page.url.endswith("/studies/modeldiff/default/04_modeldiff.html")
    assert "ModelDiff" in page.inner_text("main")
    assert not remote, f"the site asked the network for {remote}"
    context.close()
