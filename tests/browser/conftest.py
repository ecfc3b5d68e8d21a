"""The console in a real browser: Debian's Chromium driven by Playwright's sync API.

Chromium is the system's own (``shutil.which("chromium")`` or ``RUNYARD_TEST_CHROMIUM``), never
one ``playwright install`` downloads; ``make test`` installs Debian's package when it can
(``make chromium``). Without it these tests are skipped — or fail where
``RUNYARD_TEST_REQUIRE_SERVICES`` is set, as CI does, so a skipped browser pass never looks
like a green one.

Every page a test looks at is saved as a full-page PNG under ``RUNYARD_TEST_ARTIFACTS``
(default ``<repo>/.artifacts/console/``), and the pages open when a test fails as
``failed-<test>.png``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, Protocol

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Error,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from runyard.services.packages import load_package
from tests.conftest import Server, User

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "workers"
ARTIFACTS = Path(os.environ.get("RUNYARD_TEST_ARTIFACTS") or REPO / ".artifacts" / "console")
REQUIRE = bool(os.environ.get("RUNYARD_TEST_REQUIRE_SERVICES"))
#: The machine's network is closed: without these Chromium keeps trying to reach Google's
#: services in the background. No sandbox: the tests run as root in containers.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}
#: Playwright's waits (clicks, fills, ``expect``): generous, for a loaded 2-core machine.
TIMEOUT_MS = 20_000

expect.set_options(timeout=TIMEOUT_MS)


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when there is none."""
    named = os.environ.get("RUNYARD_TEST_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


if REQUIRE and chromium_path() is None:
    # As for PostgreSQL and Redis in tests/conftest.py: CI must not pass with these skipped.
    raise pytest.UsageError(
        "Chromium is not installed (`make chromium` as root, or RUNYARD_TEST_CHROMIUM) and "
        "RUNYARD_TEST_REQUIRE_SERVICES is set"
    )


def _unavailable(reason: str) -> NoReturn:
    """Skip — or fail, where CI requires every service — for want of a browser."""
    if REQUIRE:
        pytest.fail(f"{reason} (RUNYARD_TEST_REQUIRE_SERVICES is set)", pytrace=False)
    pytest.skip(reason)


# Package scope, not session: Playwright's sync API runs an event loop on this thread while it
# is open, and the rest of the suite calls asyncio.run().
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        _unavailable(
            "Chromium is not installed: `make chromium` as root installs Debian's package "
            "(apt-get install chromium), or set RUNYARD_TEST_CHROMIUM to a Chromium binary"
        )
    try:
        launched = playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS
        )
    except Error as exc:
        _unavailable(f"Chromium at {path} did not start under Playwright: {exc.message}")
    yield launched
    launched.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob("failed-*.png"):
        stale.unlink()  # from an earlier session: this one's failures only
    return ARTIFACTS


class Shot(Protocol):
    def __call__(self, page: Page, name: str, *, full_page: bool = True) -> None: ...


@pytest.fixture(scope="session")
def shot(artifacts: Path) -> Shot:
    """``shot(page, "runs")`` saves the whole page as ``runs.png`` among the artifacts."""

    def take(page: Page, name: str, *, full_page: bool = True) -> None:
        page.screenshot(path=artifacts / f"{name}.png", full_page=full_page)

    return take


ContextFactory = Callable[..., BrowserContext]


@pytest.fixture
def new_context(
    request: pytest.FixtureRequest, browser: Browser, server: Server, artifacts: Path
) -> Iterator[ContextFactory]:
    """Fresh browser contexts (no cookies) on the test server; closed after the test, once
    the pages of a failed test are saved as ``failed-<test>[-n].png``."""
    made: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        options.setdefault("viewport", VIEWPORT)
        context = browser.new_context(base_url=server.url, accept_downloads=True, **options)
        context.set_default_timeout(TIMEOUT_MS)
        made.append(context)
        return context

    yield make
    report = getattr(request.node, "rep_call", None)
    pages = [page for context in made for page in context.pages if not page.is_closed()]
    if report is not None and report.failed:
        name = "failed-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
        for n, page in enumerate(pages):
            path = artifacts / f"{name}{f'-{n}' if n else ''}.png"
            with contextlib.suppress(Error):  # a page that cannot be drawn: the failure says enough
                page.screenshot(path=path, full_page=True)
    for context in made:
        context.close()


@pytest.fixture
def context(new_context: ContextFactory) -> BrowserContext:
    return new_context()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, for ``page`` to see whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def console_user(server: Server) -> User:
    """A user of this module with the bundled ``sample-data`` worker registered."""
    user = server.user()
    server.services.workers.register(user.id, load_package(EXAMPLES / "sample-data"))
    return user


def sign_in(page: Page, user: User, *, shot: Shot | None = None) -> None:
    """Sign in through the form, as a person would; lands on the runs page."""
    page.goto("/sign-in")
    page.get_by_label("API key").fill(user.key)
    if shot is not None:
        shot(page, "sign-in")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/runs$"))


@pytest.fixture
def signed_in_page(page: Page, console_user: User) -> Page:
    sign_in(page, console_user)
    return page
