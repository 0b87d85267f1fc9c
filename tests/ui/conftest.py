"""A live supportbot (fakes for every model, a small en/zh knowledge base) with the UI, and
headless Chromium (Debian's /usr/bin/chromium) for the browser tests."""

from __future__ import annotations

import os
import shutil

import pytest

from app.server import create_app
from fixtures.dialogue import make_runtime
from fixtures.server import serve

CHROMIUM = os.environ.get("SUPPORTBOT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def ui_runtime(tmp_path_factory):
    runtime = make_runtime(tmp_path_factory.mktemp("ui-home"))
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def ui_server(ui_runtime):
    with serve(create_app(ui_runtime, ui=True)) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()
