"""The web console in Chromium, as a person uses it: sign in, start a run from a worker's form,
watch it finish, page through its rows, export them; every input editor; tasks; keyboard use,
labels, phone width and colour contrast.

What the browser shows is checked against the API's own answers (the same rows, the same
export bytes), so these tests prove the console shows the data, not only that pages render.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import PHONE, ContextFactory, Shot, sign_in
from tests.conftest import Server, User

#: A run that has to start a process and finish: generous, for a loaded machine.
RUN_TIMEOUT_MS = 90_000
STATUSES = ("ready", "running", "aborting", "succeeded", "failed")


@pytest.fixture(scope="module")
def user_api(server: Server, console_user: User) -> Iterator[httpx.Client]:
    """The API as the console's user, to check what the pages show."""
    with server.client(console_user) as client:
        yield client


def run_slug(page: Page) -> str:
    """The run whose page is open."""
    expect(page).to_have_url(re.compile(r"/runs/[^/?#]+$"))
    return page.url.rsplit("/", 1)[1]


def wait_until_finished(page: Page, status: str = "succeeded") -> None:
    """Wait for the run page to show ``status`` by itself, and for its reload once final."""
    expect(page.locator("#summary .status")).to_have_text(status, timeout=RUN_TIMEOUT_MS)
    # The page reloads itself once the run is final; the reloaded page refreshes nothing.
    expect(page.locator("[data-refresh]")).to_have_count(0, timeout=RUN_TIMEOUT_MS)
    page.wait_for_load_state()


# --- the flow ------------------------------------------------------------------------------


def shown(value: Any) -> str:
    """A value as a cell of the results table shows it (long text is cut at 300 characters)."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text[:300] + "…" if len(text) > 300 else text


def table_cells(page: Page) -> list[list[str]]:
    cells: list[list[str]] = page.locator("table.results tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.cells, c => c.textContent))"
    )
    return cells


def check_page_of_rows(page: Page, api: httpx.Client, slug: str, offset: int, count: int) -> None:
    """The table shows rows ``offset + 1`` on, numbered, with the API's values for that page."""
    reply = api.get(f"/api/v2/worker-runs/{slug}/result", params={"offset": offset, "limit": 20})
    data = reply.json()["data"]
    rows, headers = data["list"], data["headers"]
    last = min(offset + 20, count)
    expect(page.locator("#results p.count")).to_have_text(f"Rows {offset + 1}–{last} of {count}")
    labels = page.locator("table.results thead th").all_text_contents()
    assert labels == ["#", *[h["label"] for h in headers]]
    expected = [
        [str(offset + i + 1), *[shown(row.get(h["key"])) for h in headers]]
        for i, row in enumerate(rows)
    ]
    assert len(expected) == last - offset
    assert table_cells(page) == expected


def pager_link(page: Page, name: str) -> Locator:
    return page.get_by_role("navigation", name="Pages of results").get_by_role(
        "link", name=name, exact=True
    )


def api_export(api: httpx.Client, slug: str, **params: str) -> bytes:
    reply = api.get(f"/api/v2/worker-runs/{slug}/result/export", params={"format": "csv", **params})
    assert reply.status_code == 200, reply.text
    download = httpx.get(reply.json()["data"]["download_url"], timeout=60)
    assert download.status_code == 200
    return download.content


def download_export(page: Page) -> bytes:
    """Ask the export panel for a link, click it, and return the downloaded file."""
    panel = page.locator("#export")
    link = panel.locator(".download a")
    before = link.get_attribute("href") if link.count() else None
    with page.expect_response(lambda r: r.url.endswith("/export") and r.request.method == "POST"):
        panel.get_by_role("button", name="Create download link").click()
    expect(link).to_have_text("Download CSV")
    if before is not None:
        expect(link).not_to_have_attribute("href", before)
    with page.expect_download() as info:
        link.click()
    return Path(info.value.path()).read_bytes()


def test_start_watch_page_and_export_a_run(
    page: Page, server: Server, console_user: User, user_api: httpx.Client, shot: Shot
) -> None:
    sign_in(page, console_user, shot=shot)
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    shot(page, "runs")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Workers").click()
    expect(page).to_have_url(re.compile(r"/workers$"))
    shot(page, "workers")
    page.get_by_role("link", name="Start a run of Sample Data").click()
    expect(page).to_have_url(re.compile(r"/workers/sample-data/run$"))
    # 130 records in chunks of 10, 250 ms apart: a run of a few seconds to watch.
    page.get_by_label("Number of records").fill("130")
    page.get_by_label("Chunk size").fill("10")
    page.get_by_label("Delay between chunks (ms)").fill("250")
    shot(page, "start-run")
    page.get_by_role("button", name="Start run").click()

    slug = run_slug(page)
    first = page.locator("#summary .status").text_content()
    assert first in ("ready", "running"), first
    wait_until_finished(page)  # never reloaded by the test: the page follows the run itself
    expect(page.locator("pre.log")).to_contain_text("pushing 130 records")
    expect(page.locator("pre.log")).to_contain_text("done: 130 records")
    expect(page.locator("#summary")).to_contain_text("130")

    check_page_of_rows(page, user_api, slug, 0, 130)
    pager_link(page, "Next").click()
    check_page_of_rows(page, user_api, slug, 20, 130)
    pager_link(page, "Last").click()
    check_page_of_rows(page, user_api, slug, 120, 130)
    expect(pager_link(page, "Next")).to_have_count(0)  # shown, but not a link, on the last page
    page.get_by_label("Go to row").fill("77")
    page.locator("#results form").get_by_role("button", name="Show").click()
    check_page_of_rows(page, user_api, slug, 60, 130)
    pager_link(page, "First").click()
    check_page_of_rows(page, user_api, slug, 0, 130)

    # Export: CSV with every field is the default, and equals the API's own export.
    panel = page.locator("#export")
    expect(panel.get_by_label("Format")).to_have_value("csv")
    boxes = panel.locator("input[name=keys]")
    keys = [box.get_attribute("value") for box in boxes.all()]
    assert len(keys) == 18
    for box in boxes.all():
        expect(box).to_be_checked()
    assert download_export(page) == api_export(user_api, slug)
    shot(page, "run")
    # The README's picture (docs/img/console-run.png): the first screen of the page.
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "run-screen", full_page=False)

    # A subset: untick all but four; the file has those columns, in the table's order.
    keep = {"price", "name", "id", "in_stock"}
    for box in boxes.all():
        if box.get_attribute("value") not in keep:
            box.uncheck()
    picked = [key for key in keys if key in keep]
    subset = download_export(page)
    assert subset == api_export(user_api, slug, filter_keys=",".join(picked))
    assert subset.decode("utf-8-sig").splitlines()[0].split(",") == picked


# --- every editor --------------------------------------------------------------------------

EDITOR_MAIN = """
from runyard import sdk

sdk.push(sdk.input())
"""
#: One property per CoreClaw editor; option values of several JSON types.
EDITOR_PROPERTIES: list[dict[str, Any]] = [
    {
        "name": "title",
        "title": "Title",
        "type": "string",
        "editor": "input",
        "required": True,
        "default": "Hello",
        "description": "A short name.",
    },
    {"name": "notes", "title": "Notes", "type": "string", "editor": "textarea"},
    {
        "name": "max_items",
        "title": "Max items",
        "type": "integer",
        "editor": "number",
        "required": True,
        "default": 10,
        "minimum": 1,
        "maximum": 1000,
    },
    {
        "name": "ratio",
        "title": "Ratio",
        "type": "number",
        "editor": "select",
        "default": 0.5,
        "options": [
            {"label": "Half", "value": 0.5},
            {"label": "One", "value": 1},
            {"label": "One and a half", "value": 1.5},
        ],
    },
    {
        "name": "priority",
        "title": "Priority",
        "type": "integer",
        "editor": "radio",
        "default": 2,
        "options": [
            {"label": "Low", "value": 1},
            {"label": "Normal", "value": 2},
            {"label": "High", "value": 3},
        ],
    },
    {
        "name": "days",
        "title": "Days",
        "type": "array",
        "editor": "checkbox",
        "default": [1],
        "options": [
            {"label": "Monday", "value": 1},
            {"label": "Wednesday", "value": 3},
            {"label": "Friday", "value": 5},
        ],
    },
    {"name": "verbose", "title": "Verbose log", "type": "boolean", "editor": "switch"},
    {
        "name": "since",
        "title": "Since",
        "type": "string",
        "editor": "datepicker",
        "valueFormat": "DD.MM.YYYY",
    },
    {
        "name": "start_urls",
        "title": "Start URLs",
        "type": "array",
        "editor": "requestList",
        "required": True,
        "default": [{"url": "https://example.com/"}],
    },
    {
        "name": "sources",
        "title": "Sources",
        "type": "array",
        "editor": "requestListSource",
        "param_list": [
            {"param": "url", "title": "Address", "required": True},
            {"param": "label", "title": "Label"},
        ],
    },
    {
        "name": "keywords",
        "title": "Keywords",
        "type": "array",
        "editor": "stringList",
        "default": ["alpha"],
    },
    {
        "name": "extra",
        "title": "Extra settings",
        "type": "object",
        "editor": "json",
        "default": {"depth": 1},
    },
]


@pytest.fixture(scope="module")
def editors_worker(server: Server, console_user: User) -> str:
    return server.worker(
        console_user, EDITOR_MAIN, properties=EDITOR_PROPERTIES, slug="every-editor"
    )


def field_of(page: Page, control_id: str) -> Locator:
    """The ``.field`` box around a control: its label, hint and problem."""
    return page.locator(".field").filter(has=page.locator(f"#{control_id}")).last


def test_every_editor_round_trips_its_value(
    page: Page, console_user: User, user_api: httpx.Client, editors_worker: str, shot: Shot
) -> None:
    sign_in(page, console_user)
    page.goto(f"/workers/{editors_worker}/run")
    expect(page.get_by_role("heading", name=re.compile("^Start a run"))).to_be_visible()
    assert len(EDITOR_PROPERTIES) == 12
    editors = page.locator(".field[data-editor]").evaluate_all(
        "els => els.map(e => e.dataset.editor)"
    )
    assert editors == [p["editor"] for p in EDITOR_PROPERTIES]

    # Defaults are shown, required fields say so.
    expect(page.get_by_label("Title")).to_have_value("Hello")
    expect(page.get_by_label("Max items")).to_have_value("10")
    ratio = page.get_by_label("Ratio")
    assert ratio.evaluate("s => s.selectedOptions[0].label") == "Half"
    expect(page.get_by_role("radio", name="Normal")).to_be_checked()
    expect(page.get_by_role("checkbox", name="Monday")).to_be_checked()
    expect(page.get_by_role("checkbox", name="Friday")).not_to_be_checked()
    expect(page.get_by_role("switch", name="Verbose log")).not_to_be_checked()
    expect(page.get_by_label("Start URLs")).to_have_value("https://example.com/")
    expect(page.get_by_label("Keywords")).to_have_value("alpha")
    assert json.loads(page.get_by_label("Extra settings").input_value()) == {"depth": 1}
    for control_id in ("custom-title", "custom-max_items", "custom-start_urls"):
        expect(page.locator(f"label[for={control_id}]")).to_contain_text("(required)")
    expect(page.locator("label[for=custom-notes]")).not_to_contain_text("(required)")
    shot(page, "start-run-editors")

    # Change every one of them.
    page.get_by_label("Title").fill("Browser run")
    page.get_by_label("Notes").fill("line one\nline two")
    page.get_by_label("Max items").fill("25")
    ratio.select_option(label="One")
    page.get_by_role("radio", name="High").check()
    page.get_by_role("checkbox", name="Monday").uncheck()
    page.get_by_role("checkbox", name="Wednesday").check()
    page.get_by_role("checkbox", name="Friday").check()
    page.get_by_role("switch", name="Verbose log").check()
    page.get_by_label("Since").fill("2024-05-31")
    page.get_by_label("Start URLs").fill("https://example.com/a\nhttps://example.com/b\n")
    page.get_by_label("Address, row 1", exact=True).fill("https://example.org/x")
    page.get_by_label("Label, row 1", exact=True).fill("X")
    sources = [{"url": "https://example.org/x", "label": "X"}]
    add_row = page.get_by_role("button", name=re.compile("^Add row"))
    if add_row.count():
        add_row.first.click()
        page.get_by_label("Address, row 2", exact=True).fill("https://example.org/y")
        sources.append({"url": "https://example.org/y", "label": ""})
    page.get_by_label("Keywords").fill("alpha\nbeta gamma\n\n  delta  ")
    page.get_by_label("Extra settings").fill('{"depth": 2, "tags": ["a", 1, 2.5, true, null]}')
    shot(page, "start-run-editors-filled")
    page.get_by_role("button", name="Start run").click()

    slug = run_slug(page)
    wait_until_finished(page)
    rows = user_api.get(f"/api/v2/worker-runs/{slug}/result").json()["data"]["list"]
    expected = {
        "title": "Browser run",
        "notes": "line one\nline two",
        "max_items": 25,
        "ratio": 1,
        "priority": 3,
        "days": [3, 5],
        "verbose": True,
        "since": "31.05.2024",
        "start_urls": [{"url": "https://example.com/a"}, {"url": "https://example.com/b"}],
        "sources": sources,
        "keywords": ["alpha", "beta gamma", "delta"],
        "extra": {"depth": 2, "tags": ["a", 1, 2.5, True, None]},
    }
    assert len(rows) == 1
    # Compared as JSON text too: 1 == 1.0 == True in Python, not in JSON.
    assert json.dumps(rows[0], sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_a_required_field_left_empty_is_shown_at_the_field(
    page: Page, console_user: User, user_api: httpx.Client, editors_worker: str, shot: Shot
) -> None:
    def runs() -> int:
        reply = user_api.get("/api/v2/worker-runs", params={"worker_id": editors_worker})
        count: int = reply.json()["data"]["count"]
        return count

    before = runs()
    sign_in(page, console_user)
    page.goto(f"/workers/{editors_worker}/run")
    page.get_by_label("Title").fill("")
    page.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(rf"/workers/{editors_worker}/run$"))
    expect(page.get_by_role("alert").first).to_be_visible()
    title = page.get_by_label("Title")
    expect(title).to_have_attribute("aria-invalid", "true")
    problem = field_of(page, "custom-title").locator(".problem")
    expect(problem).to_have_text(re.compile(r"must not be empty|is required"))
    expect(title).to_have_attribute("aria-describedby", re.compile(r"custom-title-problem"))
    # What else was typed is kept.
    expect(page.get_by_label("Max items")).to_have_value("10")
    shot(page, "start-run-problem")
    assert runs() == before


# --- tasks ---------------------------------------------------------------------------------


def test_create_list_and_edit_a_weekly_task(
    page: Page, console_user: User, user_api: httpx.Client, shot: Shot
) -> None:
    sign_in(page, console_user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    page.locator("main").get_by_role("link", name="New task").first.click()
    page.get_by_label("Worker").select_option(value="sample-data")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name=re.compile("^New task of"))).to_be_visible()
    page.get_by_label("Title", exact=True).fill("Weekly sample")
    page.get_by_label("Run on this schedule").check()
    page.get_by_label("Repeats").select_option(label="Weekly")
    page.get_by_label("Weekday").select_option(label="Wednesday")
    page.get_by_label("Time", exact=True).fill("06:30")
    page.get_by_label("Number of records").fill("5")
    shot(page, "task-form")
    page.get_by_role("button", name="Create task").click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    slug = page.url.split("/tasks/", 1)[1].split("?", 1)[0]

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    row = page.locator("table.list tbody tr").filter(has_text="Weekly sample")
    expect(row).to_contain_text("Weekly on Wednesday at 06:30")
    shot(page, "tasks")

    row.get_by_role("link", name="Weekly sample").click()
    expect(page.get_by_label("Title", exact=True)).to_have_value("Weekly sample")
    expect(page.get_by_label("Number of records")).to_have_value("5")
    page.get_by_label("Title", exact=True).fill("Weekly sample, edited")
    page.get_by_label("Weekday").select_option(label="Friday")
    page.get_by_role("button", name="Save task").click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    shot(page, "task-edit")

    task = user_api.get(f"/api/v2/worker-tasks/{slug}").json()["data"]
    assert (task["title"], task["schedule_enabled"], task["schedule_type"]) == (
        "Weekly sample, edited",
        1,
        2,
    )
    assert (task["schedule_weekday"], task["schedule_time"]) == (5, "06:30")
    assert task["input"]["parameters"]["custom"]["count"] == 5


# --- accessibility and phone width ---------------------------------------------------------


@pytest.fixture(scope="module")
def wide_run(server: Server, console_user: User) -> str:
    """A finished run whose rows are wider than any screen: many columns, short codes, long
    URLs and text, nested values."""
    rows = [
        {
            "id": i,
            "sku": f"SKU-{i:04X}A{i * 7:03d}",
            "name": f"Compact Widget {i}",
            "brand": "Northwind",
            "url": f"https://shop.example.com/products/{i}/" + "very-long-path-segment-" * 4,
            "image_url": f"https://cdn.example.com/img/{i:08x}/compact-widget-{i}.jpg",
            "price": round(19.99 + i, 2),
            "currency": "EUR",
            "rating": 4.5,
            "review_count": 1000 + i,
            "in_stock": i % 2 == 0,
            "stock_quantity": i * 3,
            "categories": ["Home & Kitchen", "Kitchen", "Kettles"],
            "tags": ["bestseller", "refurbished"],
            "description": "A fairly long product description that wraps over lines " * 2,
            "address": {"street": "Long Street 1", "city": "Somewhere", "zip": "12345"},
            "created_at": "2024-05-31T12:00:00Z",
        }
        for i in range(30)
    ]
    return server.run(console_user, rows, worker="wide-rows")


BROKEN_WORDS_JS = """
cells => cells.filter(td => {
  const text = td.textContent;
  // One word or number, with no place a line may break (a space, a hyphen).
  if (!/^[\\p{L}\\p{N}.]{1,24}$/u.test(text)) return false;
  const range = document.createRange();
  range.selectNodeContents(td);
  return new Set(Array.from(range.getClientRects(), r => Math.round(r.top))).size > 1;
}).map(td => td.textContent)
"""


def test_result_cells_keep_short_values_on_one_line(signed_in_page: Page, wide_run: str) -> None:
    page = signed_in_page
    page.goto(f"/runs/{wide_run}")
    cells = page.locator("table.results tbody td")
    expect(cells.first).to_be_visible()
    broken: list[str] = cells.evaluate_all(BROKEN_WORDS_JS)
    assert broken == []


UNLABELLED_JS = """
els => els.filter(el => {
  const named = (text) => Boolean(text && text.trim());
  if (named(el.getAttribute("aria-label"))) return false;
  const by = el.getAttribute("aria-labelledby");
  if (by && by.split(/\\s+/).some(id => named(document.getElementById(id)?.textContent))) {
    return false;
  }
  if (el.id && Array.from(document.querySelectorAll("label[for]"))
      .some(l => l.htmlFor === el.id && named(l.textContent))) return false;
  return !named(el.closest("label")?.textContent);
}).map(el => el.outerHTML.slice(0, 160))
"""


def unlabelled_controls(page: Page) -> list[str]:
    """Visible form controls without an accessible name (label[for], wrapping label, aria)."""
    controls = page.locator("input:visible, select:visible, textarea:visible")
    assert controls.count() > 0
    found: list[str] = controls.evaluate_all(UNLABELLED_JS)
    return found


def check_keyboard_start(page: Page) -> None:
    """Tab from the top reaches "Skip to content" first; it moves focus to the main content."""
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.querySelector('main').contains(document.activeElement)")


def test_keyboard_and_labels(
    page: Page,
    console_user: User,
    editors_worker: str,
    wide_run: str,
    shot: Shot,
) -> None:
    sign_in(page, console_user)
    for path in ("/runs", f"/runs/{wide_run}", f"/workers/{editors_worker}/run", "/tasks"):
        page.goto(path)
        check_keyboard_start(page)

    page.goto(f"/workers/{editors_worker}/run")
    page.locator("details.run-options summary").click()  # its fields count too
    assert unlabelled_controls(page) == []
    page.goto(f"/runs/{wide_run}")
    assert unlabelled_controls(page) == []
    page.goto("/workers/sample-data/run")
    assert unlabelled_controls(page) == []
    page.goto("/tasks/new?worker=sample-data")
    page.locator("details.run-options summary").click()
    assert unlabelled_controls(page) == []


OVERFLOW_JS = """
() => {
  const width = window.innerWidth;
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.right <= width + 0.5 || box.width === 0) continue;
    // Inside a box that scrolls on its own (the results table): not a page scroll.
    let p = el.parentElement, contained = false;
    for (; p && p !== document.body; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === "auto" || o === "scroll" || o === "hidden") { contained = true; break; }
    }
    if (!contained) wide.push(`${el.tagName.toLowerCase()}.${el.className} right=${box.right}`);
  }
  return {scroll: document.documentElement.scrollWidth, inner: width, wide: wide.slice(0, 10)};
}
"""


def check_no_page_scroll(page: Page) -> None:
    found = page.evaluate(OVERFLOW_JS)
    assert found["scroll"] <= found["inner"], found


def test_phone_width_has_no_page_scroll(
    new_context: ContextFactory,
    console_user: User,
    editors_worker: str,
    wide_run: str,
    shot: Shot,
) -> None:
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    sign_in(page, console_user)
    page.goto(f"/runs/{wide_run}")
    expect(page.locator("table.results")).to_be_visible()
    check_no_page_scroll(page)
    # The table is wider than the phone and scrolls in its own box.
    scroller = page.locator("#results .scroll")
    assert scroller.evaluate("s => s.scrollWidth > s.clientWidth")
    shot(page, "run-phone")
    for path, name in (
        ("/workers/sample-data/run", "start-run-phone"),
        (f"/workers/{editors_worker}/run", "start-run-editors-phone"),
        ("/runs", "runs-phone"),
        ("/tasks/new?worker=sample-data", "task-form-phone"),
    ):
        page.goto(path)
        check_no_page_scroll(page)
        shot(page, name)


CONTRAST_JS = """
() => {
  const rgba = (text) => {
    const m = /^rgba?\\(([^)]+)\\)$/.exec(text.trim());
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(parseFloat);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c === null) return null;
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    let bg = dark ? [0, 0, 0, 1] : [255, 255, 255, 1];  // the canvas under it all
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const ratio = (a, b) => {
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const kind = (el) => {
    if (el.closest(".status")) return "status";
    if (el.closest("button, .button")) return "button";
    if (el.closest("a")) return "link";
    if (el.closest(".hint")) return "hint";
    return "text";
  };
  const found = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (["SCRIPT", "STYLE", "OPTION", "TITLE"].includes(el.tagName)) continue;
    const own = Array.from(el.childNodes)
      .filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.textContent).join("").trim();
    const control = ["INPUT", "SELECT", "TEXTAREA"].includes(el.tagName)
      && !["checkbox", "radio", "hidden"].includes(el.type);
    if (!own && !control) continue;
    if (!el.checkVisibility({visibilityProperty: true, opacityProperty: true})) continue;
    if (el.closest("[disabled], [aria-disabled=true] button")) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= 0 || box.bottom <= 0) continue;  // off screen (skip link)
    const bg = background(el);
    const fg = rgba(getComputedStyle(el).color);
    if (bg === null || fg === null) {
      const colour = getComputedStyle(el).color;
      found.push({kind: kind(el), ratio: 0, what: "colour not rgb(): " + colour});
      continue;
    }
    const classes = String(el.className).split(" ").filter(Boolean).map(c => "." + c).join("");
    const what = `${el.tagName.toLowerCase()}${classes} "${own.slice(0, 30)}"`;
    found.push({kind: kind(el), ratio: ratio(over(fg, bg), bg), what});
  }
  return found;
}
"""

BADGES_JS = """
statuses => document.querySelector("main").insertAdjacentHTML("afterbegin",
  "<p id='badges'>" + statuses.map(s => `<span class="status status-${s}">${s}</span>`).join(" ")
  + "</p>")
"""


def low_contrast(page: Page, seen: set[str]) -> list[str]:
    """Text on the page below 4.5:1 against its background; notes the kinds of text seen."""
    measured: list[dict[str, Any]] = page.evaluate(CONTRAST_JS)
    seen.update(m["kind"] for m in measured)
    return [f"{m['ratio']:.2f} {m['kind']} {m['what']}" for m in measured if m["ratio"] < 4.5]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast(
    new_context: ContextFactory,
    console_user: User,
    wide_run: str,
    scheme: str,
    shot: Shot,
) -> None:
    page = new_context(color_scheme=scheme).new_page()
    page.goto("/sign-in")
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".problem")).to_be_visible()  # the danger colour, on the page's own
    seen: set[str] = set()
    problems = low_contrast(page, seen)
    sign_in(page, console_user)
    for path in ("/runs", f"/runs/{wide_run}", "/workers", "/workers/sample-data/run", "/tasks"):
        page.goto(path)
        if path == "/runs":
            # Every status badge, whether or not a run of that status exists right now.
            page.evaluate(BADGES_JS, list(STATUSES))
            expect(page.locator("#badges .status")).to_have_count(len(STATUSES))
        problems += [f"{path}: {line}" for line in low_contrast(page, seen)]
        if path == f"/runs/{wide_run}":
            shot(page, f"run-{scheme}")
    assert seen >= {"text", "hint", "link", "button", "status"}, seen
    assert problems == []
