"""Breadth-first HTML crawler: fetch pages, extract fields with CSS selectors, follow links.

Independent of Runyard: ``crawl()`` reports through two plain callables, ``emit(row)`` and
``log(level, msg)`` (level is "debug", "info", "warn" or "error"), so it runs and tests anywhere::

    config = config_from_input({"start_urls": ["https://example.com/"]})
    stats = asyncio.run(crawl(config, emit=print, log=lambda level, msg: print(level, msg)))

Behaviour, in short:

- Level by level: every URL at depth *d* is fetched (``concurrency`` at a time) before any at
  depth *d + 1*, and the next level is built from the finished pages in level order and link
  order. A URL therefore gets its shortest depth and rows come out in the same order on every
  run, whatever the timing; the cost is that one slow page holds back the next level.
- Rows: one per HTTP response, ``{"url", "depth", "status", <fields>…}``; ``url`` is the final
  URL after redirects; fields are ``None`` unless the response is 2xx HTML. A URL that never got
  a response (network errors after every retry) is logged, not emitted.
- Scope: start URLs are always fetched; links (and redirect hops) are followed only when they
  match ``url_glob`` or, without a glob, when they are on a start URL's host (host and port).
- URLs are normalised (scheme and host lower-cased, default port and fragment dropped, empty
  path made "/") and never fetched twice; a redirect's target counts as seen too.
- ``max_pages`` caps the URLs requested (robots.txt and redirect hops not counted).
- Retries: network errors, 429 and 5xx are retried ``max_retries`` times with exponential
  backoff, or after ``Retry-After`` when the server sends one (capped at ``max_backoff``).
- robots.txt (RFC 9309): fetched once per origin; 4xx means allow all, 5xx or unreachable
  means disallow all.
"""

from __future__ import annotations

import asyncio
import email.utils
import fnmatch
import json
import random
import re
import time
import urllib.robotparser
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from selectolax.lexbor import LexborHTMLParser, LexborNode

Row = dict[str, Any]
EmitFn = Callable[[Row], None]
LogFn = Callable[[str, str], None]

RESERVED_KEYS = ("url", "depth", "status")
DEFAULT_FIELDS: dict[str, str] = {"title": "title"}
DEFAULT_LINK_SELECTOR = "a[href]"
DEFAULT_USER_AGENT = "RunyardWebScraper/1.0"
MAX_REDIRECTS = 10
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ATTR_NAME = re.compile(r"^[A-Za-z_:][-A-Za-z0-9_:.]*$")


@dataclass(frozen=True)
class FieldSpec:
    """One output field: the first node matching ``selector``, its ``attr`` or else its text."""

    name: str
    selector: str
    attr: str | None = None

    @classmethod
    def parse(cls, name: str, spec: str) -> FieldSpec:
        selector, sep, attr = spec.rpartition("@")
        # "a[href$='@x.org']" holds an "@" too: only a trailing attribute name splits the spec.
        if sep and selector.strip() and _ATTR_NAME.match(attr.strip()):
            return cls(name, selector.strip(), attr.strip())
        return cls(name, spec.strip())


@dataclass(frozen=True)
class CrawlConfig:
    start_urls: tuple[str, ...]
    link_selector: str = DEFAULT_LINK_SELECTOR
    url_glob: str | None = None
    fields: tuple[FieldSpec, ...] = (FieldSpec("title", "title"),)
    max_pages: int = 100
    max_depth: int = 2
    concurrency: int = 5
    max_retries: int = 3
    respect_robots_txt: bool = True
    timeout_seconds: float = 30.0
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 60.0
    user_agent: str = DEFAULT_USER_AGENT

    @property
    def field_names(self) -> list[str]:
        return [spec.name for spec in self.fields]


@dataclass
class CrawlStats:
    requested: int = 0
    rows: int = 0
    failed: int = 0
    retries: int = 0
    robots_skipped: int = 0
    out_of_scope: int = 0
    duplicates: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 §5.2.4; urljoin only does this for relative references, not absolute URLs.
    if "/." not in path:
        return path
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if len(segments) > 1:
                segments.pop()
        elif segment != ".":
            segments.append(segment)
    result = "/".join(segments)
    if path.endswith(("/.", "/..")):
        result += "/"
    return result or "/"


def normalize_url(url: str, base: str | None = None) -> str | None:
    """The canonical form used for scope checks and de-duplication; None if not http(s)."""
    try:
        absolute = urljoin(base, url.strip()) if base else url.strip()
        parts = urlsplit(absolute)
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((scheme, netloc, _remove_dot_segments(parts.path) or "/", parts.query, ""))


def site_of(url: str) -> str:
    """Host and non-default port: what "same host" compares."""
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2]


def _to_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _to_float(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {number}")
    return number


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{name} must be true or false, got {value!r}")


def _check_selector(name: str, selector: str) -> None:
    try:
        LexborHTMLParser("<html></html>").css_first(selector)
    except Exception as exc:  # selectolax raises its own error type for a bad selector
        raise ValueError(f"{name}: invalid CSS selector {selector!r} ({exc})") from None


def _start_urls(value: Any) -> tuple[str, ...]:
    # CoreClaw's requestList editor sends [{"url": …}]; plain strings are accepted as well.
    items = [value] if isinstance(value, str | dict) else value
    if not isinstance(items, list) or not items:
        raise ValueError("start_urls must be a non-empty list of URLs")
    urls: list[str] = []
    for item in items:
        raw = item.get("url") if isinstance(item, dict) else item
        if not isinstance(raw, str) or not raw.strip():
            continue
        url = normalize_url(raw)
        if url is None:
            raise ValueError(f"start_urls: not an http(s) URL: {raw!r}")
        if url not in urls:
            urls.append(url)
    if not urls:
        raise ValueError("start_urls must hold at least one URL")
    return tuple(urls)


def _fields(value: Any) -> tuple[FieldSpec, ...]:
    if value is None or value == "" or value == {}:
        value = DEFAULT_FIELDS
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"fields must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("fields must be an object mapping field name to CSS selector")
    specs: list[FieldSpec] = []
    for name, spec in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError("fields: names must be non-empty strings")
        if name in RESERVED_KEYS:
            raise ValueError(f"fields: {name!r} is reserved (every row has url, depth, status)")
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"fields: {name!r} needs a CSS selector string")
        parsed = FieldSpec.parse(name, spec)
        _check_selector(f"fields.{name}", parsed.selector)
        specs.append(parsed)
    return tuple(specs)


def config_from_input(params: Mapping[str, Any]) -> CrawlConfig:
    """Validate a run's input (the worker's input_schema.json) into a CrawlConfig."""

    def option(key: str, convert: Callable[[str, Any], Any], default: Any) -> Any:
        value = params.get(key)
        return default if value is None or value == "" else convert(key, value)

    link_selector = str(params.get("link_selector") or "").strip() or DEFAULT_LINK_SELECTOR
    _check_selector("link_selector", link_selector)
    url_glob = str(params.get("url_glob") or "").strip() or None
    d = CrawlConfig(start_urls=())
    return CrawlConfig(
        start_urls=_start_urls(params.get("start_urls")),
        link_selector=link_selector,
        url_glob=url_glob,
        fields=_fields(params.get("fields")),
        max_pages=option("max_pages", lambda k, v: _to_int(k, v, 1, 10_000_000), d.max_pages),
        max_depth=option("max_depth", lambda k, v: _to_int(k, v, 0, 1000), d.max_depth),
        concurrency=option("concurrency", lambda k, v: _to_int(k, v, 1, 100), d.concurrency),
        max_retries=option("max_retries", lambda k, v: _to_int(k, v, 0, 20), d.max_retries),
        respect_robots_txt=option("respect_robots_txt", _to_bool, d.respect_robots_txt),
        timeout_seconds=option(
            "timeout_seconds", lambda k, v: _to_float(k, v, 0.1, 3600), d.timeout_seconds
        ),
    )


def _text(node: LexborNode) -> str:
    return " ".join(node.text(deep=True).split())


def extract_fields(tree: LexborHTMLParser, fields: Sequence[FieldSpec]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in fields:
        node = tree.css_first(spec.selector)
        if node is None:
            values[spec.name] = None
        elif spec.attr is not None:
            values[spec.name] = node.attributes.get(spec.attr)
        else:
            values[spec.name] = _text(node)
    return values


def extract_links(tree: LexborHTMLParser, page_url: str, selector: str) -> list[str]:
    """Normalised http(s) targets of the nodes matching ``selector``, in document order."""
    base = page_url
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        base = normalize_url(base_node.attributes.get("href") or "", page_url) or page_url
    links: list[str] = []
    for node in tree.css(selector):
        href = node.attributes.get("href")
        if href is None:
            continue
        url = normalize_url(href, base)
        if url is not None:
            links.append(url)
    return links


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _is_retryable_error(exc: httpx.HTTPError) -> bool:
    # Bad URLs, unsupported schemes and our own protocol misuse fail the same way every time.
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


@dataclass
class _PageResult:
    row: Row | None = None
    links: list[str] = field(default_factory=list)


class _Crawler:
    def __init__(
        self, config: CrawlConfig, client: httpx.AsyncClient, emit: EmitFn, log: LogFn
    ) -> None:
        self.config = config
        self.client = client
        self.emit = emit
        self.log = log
        self.stats = CrawlStats()
        self.seen: set[str] = set()
        self.start_sites = {site_of(url) for url in config.start_urls}
        self.robots: dict[str, urllib.robotparser.RobotFileParser] = {}
        self.robots_locks: dict[str, asyncio.Lock] = {}
        self.semaphore = asyncio.Semaphore(config.concurrency)
        self.last_progress = time.monotonic()

    def in_scope(self, url: str) -> bool:
        if self.config.url_glob is not None:
            return fnmatch.fnmatchcase(url, self.config.url_glob)
        return site_of(url) in self.start_sites

    def backoff(self, retry: int, response: httpx.Response | None) -> float:
        if response is not None:
            after = parse_retry_after(response.headers.get("Retry-After"))
            if after is not None:
                return min(after, self.config.max_backoff_seconds)
        delay = self.config.backoff_seconds * 2.0**retry
        # Jitter keeps concurrent retries against one host from arriving in lockstep.
        return min(delay * random.uniform(0.8, 1.2), self.config.max_backoff_seconds)

    async def fetch(self, url: str) -> httpx.Response | None:
        """GET without following redirects, retrying network errors, 429 and 5xx."""
        retry = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self.client.get(url)
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if not _is_retryable_error(exc) or retry >= self.config.max_retries:
                    self.log("error", f"failed {url}: {reason} (after {retry} retries)")
                    return None
                problem = reason
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return response
                if retry >= self.config.max_retries:
                    self.log(
                        "error",
                        f"giving up on {url}: HTTP {response.status_code} (after {retry} retries)",
                    )
                    return response
                problem = f"HTTP {response.status_code}"
            delay = self.backoff(retry, response)
            retry += 1
            self.stats.retries += 1
            self.log(
                "warn",
                f"{problem} for {url}; retry {retry}/{self.config.max_retries} in {delay:.2f}s",
            )
            await asyncio.sleep(delay)

    async def robots_for(self, url: str) -> urllib.robotparser.RobotFileParser:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        lock = self.robots_locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin in self.robots:
                return self.robots[origin]
            parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
            response = await self.fetch(origin + "/robots.txt")
            if response is None or response.status_code >= 500:
                self.log("warn", f"{origin}/robots.txt unreachable: not crawling {origin}")
                parser.parse(["User-agent: *", "Disallow: /"])
            elif response.status_code >= 400:
                parser.parse([])
            elif response.is_redirect:
                # Following robots.txt redirects across hosts is rarely wanted; stay permissive.
                self.log("debug", f"{origin}/robots.txt redirects; treating as absent")
                parser.parse([])
            else:
                parser.parse(response.text.splitlines())
            self.robots[origin] = parser
            return parser

    async def allowed(self, url: str) -> bool:
        if not self.config.respect_robots_txt:
            return True
        parser = await self.robots_for(url)
        return parser.can_fetch(self.config.user_agent, url)

    async def visit(self, url: str, depth: int) -> _PageResult:
        async with self.semaphore:
            return await self._visit(url, depth)

    async def _visit(self, url: str, depth: int) -> _PageResult:
        current = url
        response = await self.fetch(current)
        hops = 0
        while response is not None and response.is_redirect and hops < MAX_REDIRECTS:
            target = normalize_url(response.headers.get("Location", ""), current)
            # Same-site hops (http→https, a trailing slash) are followed even when a glob
            # would not match them: the page itself was in scope.
            if target is None or not (self.in_scope(target) or site_of(target) == site_of(current)):
                self.log("warn", f"{current} redirects out of scope to {target}; not following")
                break
            if target in self.seen:
                self.stats.duplicates += 1
                self.log("debug", f"{current} redirects to already seen {target}")
                return _PageResult()
            if not await self.allowed(target):
                self.stats.robots_skipped += 1
                self.log("info", f"{current} redirects to {target}, disallowed by robots.txt")
                break
            self.seen.add(target)
            hops += 1
            current = target
            response = await self.fetch(current)
        if response is None:
            self.stats.failed += 1
            return _PageResult()
        if response.is_redirect and hops >= MAX_REDIRECTS:
            self.log("warn", f"more than {MAX_REDIRECTS} redirects from {url}; stopped")
        status = response.status_code
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
        row: Row = {"url": current, "depth": depth, "status": status}
        row.update(dict.fromkeys(self.config.field_names))
        links: list[str] = []
        content_type = response.headers.get("Content-Type", "").lower()
        if response.is_success and (not content_type or "html" in content_type):
            tree = LexborHTMLParser(response.text)
            row.update(extract_fields(tree, self.config.fields))
            if depth < self.config.max_depth:
                links = extract_links(tree, current, self.config.link_selector)
        elif status >= 400:
            self.stats.failed += 1
            if status != 429 and status < 500:  # fetch() already logged the retried ones
                self.log("warn", f"HTTP {status} for {current}")
        via = f", redirected from {url}" if current != url else ""
        self.log("debug", f"{status} {current} (depth {depth}, {len(links)} links{via})")
        return _PageResult(row, links)

    async def run(self) -> CrawlStats:
        config = self.config
        level: list[str] = []
        for url in config.start_urls:
            self.seen.add(url)
            level.append(url)
        depth = 0
        while level and self.stats.requested < config.max_pages:
            batch: list[str] = []
            budget = config.max_pages - self.stats.requested
            for url in level:
                if len(batch) >= budget:
                    break
                if not await self.allowed(url):
                    self.stats.robots_skipped += 1
                    self.log("info", f"disallowed by robots.txt: {url}")
                    continue
                batch.append(url)
            if not batch:
                break
            self.log("info", f"depth {depth}: fetching {len(batch)} pages")
            self.stats.requested += len(batch)
            tasks = [asyncio.create_task(self.visit(url, depth)) for url in batch]
            results: list[_PageResult] = []
            try:
                for task in tasks:
                    # Awaiting in level order emits rows in a stable order while later pages
                    # of the level are still being fetched.
                    result = await task
                    results.append(result)
                    if result.row is not None:
                        self.emit(result.row)
                        self.stats.rows += 1
                        self.progress()
            finally:
                for task in tasks:
                    task.cancel()
            level = self.next_level(results)
            depth += 1
        if level and self.stats.requested >= config.max_pages:
            self.log("info", f"max_pages ({config.max_pages}) reached")
        return self.stats

    def next_level(self, results: list[_PageResult]) -> list[str]:
        level: list[str] = []
        for result in results:
            for url in result.links:
                if url in self.seen:
                    self.stats.duplicates += 1
                elif not self.in_scope(url):
                    self.stats.out_of_scope += 1
                    self.seen.add(url)
                    self.log("debug", f"out of scope: {url}")
                else:
                    self.seen.add(url)
                    level.append(url)
        return level

    def progress(self) -> None:
        now = time.monotonic()
        if now - self.last_progress >= 5 or self.stats.rows % 50 == 0:
            self.last_progress = now
            self.log(
                "info",
                f"progress: {self.stats.rows} rows, {self.stats.requested}/"
                f"{self.config.max_pages} pages requested, {self.stats.failed} failed",
            )


async def crawl(config: CrawlConfig, emit: EmitFn, log: LogFn) -> CrawlStats:
    """Crawl as ``config`` says, calling ``emit`` once per row and ``log`` for progress."""
    timeout = httpx.Timeout(config.timeout_seconds)
    limits = httpx.Limits(max_connections=config.concurrency)
    headers = {"User-Agent": config.user_agent}
    started = time.monotonic()
    async with httpx.AsyncClient(
        timeout=timeout, limits=limits, headers=headers, follow_redirects=False
    ) as client:
        stats = await _Crawler(config, client, emit, log).run()
    log(
        "info",
        f"done in {time.monotonic() - started:.1f}s: {stats.rows} rows from "
        f"{stats.requested} pages requested; {stats.failed} failed, {stats.retries} retries, "
        f"{stats.robots_skipped} disallowed by robots.txt, {stats.out_of_scope} out of scope",
    )
    return stats
