"""Headless Chromium (Debian's ``chromium`` package, installed by ``.ci/run``)
driven by Playwright, against real ``orchestrator serve`` processes.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium``
(``ORCH_CHROMIUM`` names another). Screenshots go to ``$ORCH_TEST_ARTIFACTS``,
or ``test-artifacts/browser`` in the checkout (ignored by git). A test fails
when its page logged a JavaScript error or a refused request (CSP)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent
CHROMIUM = os.environ.get("ORCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1440, "height": 1000}


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    where = Path(os.environ.get("ORCH_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "browser"
    where.mkdir(parents=True, exist_ok=True)
    return where


class Tab:
    """A page in a fresh browser context, and the problems it logged."""

    def __init__(self, browser, artifacts: Path):
        self.context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.artifacts = artifacts
        self.problems: list[str] = []
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("console", self._console)

    def _console(self, message) -> None:
        # The API's 4xx answers are expected in some tests (a bad token, a viewer's
        # refusal) and Chromium logs each one; anything else logged as an error is not.
        if message.type == "error" and not message.text.startswith(
                "Failed to load resource: the server responded with a status of 4"):
            self.problems.append(f"console: {message.text}")

    def shot(self, name: str, full_page: bool = False, down_to: str | None = None) -> Path:
        """A PNG of the page: the viewport, the whole page, or from the top down to
        the bottom of the element ``down_to``."""
        path = self.artifacts / f"{name}.png"
        clip = None
        if down_to is not None:
            box = self.page.locator(down_to).bounding_box()
            clip = {"x": 0, "y": 0, "width": VIEWPORT["width"],
                    "height": box["y"] + box["height"] + 16}
            full_page = True
        self.page.screenshot(path=str(path), full_page=full_page, clip=clip)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser, artifacts, request):
    t = Tab(browser, artifacts)
    yield t
    failed = getattr(request.node, "failed_call", False)
    if failed:
        t.shot(f"FAILED-{request.node.name}", full_page=True)
    t.close()
    assert not t.problems, "the page logged problems:\n" + "\n".join(t.problems)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        item.failed_call = True
    return report
