"""A tiny shop website on loopback, for testing crawlers and scraping workers.

``ShopSite`` serves it from a ``ThreadingHTTPServer`` bound to ``127.0.0.1`` on a free port::

    with ShopSite(slow_delay=0.2) as site:
        site.url            # "http://127.0.0.1:<port>"
        site.hits["/flaky"] # how many requests each path received

Every page is static and deterministic except ``/flaky`` (it answers 503 a set number of times,
then 200; the count lives on the ``ShopSite`` instance, so use a fresh one or ``reset()``) and
``/slow`` (it sleeps ``slow_delay`` seconds).

Layout (``P`` is the port; HTML pages are ``text/html; charset=utf-8``)::

    /robots.txt        User-agent: * / Disallow: /private/
    /                  "Test Shop" — links, in document order:
                         /category/a, /category/b, /category/a#top (same page, fragment),
                         /flaky, /slow, /moved, /missing, /private/secret,
                         http://localhost:P/offsite (another host name: off-site, same server),
                         mailto:shop@example.com
    /category/a        "Category A | Test Shop" — /product/1 … /product/5, then / (home)
    /category/b        "Category B | Test Shop" — /product/6 … /product/10, /product/1 (again),
                         /product/6#reviews (again, with fragment), then / (home)
    /product/N         N = 1…10: "Product N | Test Shop"; markup
                         <div class="product" data-sku="SKU-00N">
                           <h1 class="name">Product N</h1> <span class="price">$<N*10-0.01></span>
                         </div>
                         links: / and its category (1-5 → /category/a, 6-10 → /category/b)
    /flaky             503 with "Retry-After: <flaky_retry_after>" for the first
                         ``flaky_failures`` requests (default 1), then 200 "Flaky Deal | Test Shop"
                         with the product markup for SKU-FLAKY, name "Flaky Deal", price $5.00
    /slow              sleeps ``slow_delay`` s, then 200 "Slow Page | Test Shop", no links
    /moved             301 → /product/3
    /missing           404 "Not Found | Test Shop"
    /private/secret    200 "Secret | Test Shop" — only reachable by ignoring robots.txt
    /offsite           200 "Offsite | Test Shop" — linked as http://localhost:P/offsite
    anything else      404

A crawl of ``site.url + "/"`` with link selector ``a[href]``, same-host scope, robots.txt
respected, ``max_depth=2``, ``fields={"title": "title"}``, fields taken only from 2xx HTML,
redirects followed (the row carrying the final URL) and URLs de-duplicated breadth-first,
yields these 16 rows (``u`` = ``site.url``)::

    depth 0: u/                    200  "Test Shop"
    depth 1: u/category/a          200  "Category A | Test Shop"
             u/category/b          200  "Category B | Test Shop"
             u/flaky               200  "Flaky Deal | Test Shop"   (after one 503 and a retry)
             u/slow                200  "Slow Page | Test Shop"
             u/product/3           200  "Product 3 | Test Shop"    (reached through /moved)
             u/missing             404  None
    depth 2: u/product/1, 2, 4, 5, 6, 7, 8, 9, 10   200  "Product N | Test Shop"

Never fetched: /private/secret (robots.txt), http://localhost:P/offsite (another host),
mailto: (not http), and no page twice (``hits`` shows 2 for ``/flaky``, 1 for the others).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

ROBOTS_TXT = "User-agent: *\nDisallow: /private/\n"
PRODUCT_IDS = range(1, 11)


def product_price(n: int) -> str:
    """The price text of /product/<n>, e.g. "$29.99" for 3."""
    return f"${n * 10 - 0.01:.2f}"


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n{body}\n</body></html>\n"
    )


def _links(*hrefs: str) -> str:
    return "\n".join(f'<a href="{href}">{href}</a>' for href in hrefs)


def _product_markup(sku: str, name: str, price: str) -> str:
    return (
        f'<div class="product" data-sku="{sku}">'
        f'<h1 class="name">{name}</h1> <span class="price">{price}</span></div>'
    )


class ShopSite:
    """The shop described in this module's docstring; a context manager with ``.url``."""

    def __init__(
        self,
        *,
        slow_delay: float = 0.2,
        flaky_failures: int = 1,
        flaky_retry_after: str | None = "0",
    ) -> None:
        self.slow_delay = slow_delay
        self.flaky_failures = flaky_failures
        self.flaky_retry_after = flaky_retry_after
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.offsite_url = f"http://localhost:{self.port}/offsite"
        self._thread: threading.Thread | None = None

    def start(self) -> ShopSite:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def reset(self) -> None:
        """Forget the hit counts, so /flaky fails again."""
        with self._lock:
            self.hits.clear()

    def __enter__(self) -> ShopSite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _count(self, path: str) -> int:
        with self._lock:
            self.hits[path] += 1
            return self.hits[path]

    def respond(self, path: str) -> tuple[int, dict[str, str], str]:
        """Status, headers and body for ``path``; the handler's logic, callable directly."""
        html = "text/html; charset=utf-8"
        hit = self._count(path)
        if path == "/robots.txt":
            return 200, {"Content-Type": "text/plain; charset=utf-8"}, ROBOTS_TXT
        if path == "/":
            body = _links(
                "/category/a",
                "/category/b",
                "/category/a#top",
                "/flaky",
                "/slow",
                "/moved",
                "/missing",
                "/private/secret",
                self.offsite_url,
                "mailto:shop@example.com",
            )
            return 200, {"Content-Type": html}, _page("Test Shop", body)
        if path in ("/category/a", "/category/b"):
            letter = path[-1]
            ids = list(PRODUCT_IDS)[:5] if letter == "a" else list(PRODUCT_IDS)[5:]
            hrefs = [f"/product/{n}" for n in ids]
            if letter == "b":
                hrefs += ["/product/1", "/product/6#reviews"]
            body = f"<h1>Category {letter.upper()}</h1>\n" + _links(*hrefs, "/")
            return (
                200,
                {"Content-Type": html},
                _page(f"Category {letter.upper()} | Test Shop", body),
            )
        if path.startswith("/product/") and path[len("/product/") :].isdigit():
            n = int(path[len("/product/") :])
            if n in PRODUCT_IDS:
                category = "/category/a" if n <= 5 else "/category/b"
                body = _product_markup(f"SKU-{n:03d}", f"Product {n}", product_price(n))
                body += "\n" + _links("/", category)
                return 200, {"Content-Type": html}, _page(f"Product {n} | Test Shop", body)
        if path == "/flaky":
            if hit <= self.flaky_failures:
                headers = {"Content-Type": html}
                if self.flaky_retry_after is not None:
                    headers["Retry-After"] = self.flaky_retry_after
                return 503, headers, _page("Unavailable", "<p>try again</p>")
            body = _product_markup("SKU-FLAKY", "Flaky Deal", "$5.00")
            return 200, {"Content-Type": html}, _page("Flaky Deal | Test Shop", body)
        if path == "/slow":
            time.sleep(self.slow_delay)
            return 200, {"Content-Type": html}, _page("Slow Page | Test Shop", "<p>finally</p>")
        if path == "/moved":
            return 301, {"Location": "/product/3", "Content-Type": html}, ""
        if path == "/private/secret":
            return 200, {"Content-Type": html}, _page("Secret | Test Shop", "<p>robots!</p>")
        if path == "/offsite":
            return 200, {"Content-Type": html}, _page("Offsite | Test Shop", "<p>elsewhere</p>")
        return 404, {"Content-Type": html}, _page("Not Found | Test Shop", "<p>no such page</p>")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, headers, body = site.respond(urlsplit(self.path).path)
                data = body.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    # A client that timed out (the point of /slow) has hung up; nothing to do.
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                # Keep test output clean; ``ShopSite.hits`` records the requests instead.
                return

        return Handler
