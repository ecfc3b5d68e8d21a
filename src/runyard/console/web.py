"""What every console page shares: templates, the signed-in viewer, CSRF checks, error pages.

Console routes use ``ConsoleRoute``: whatever a page raises — a service refusal, a bad query
value, a missing session — becomes an HTML page (or a redirect to sign-in), never the API's
JSON envelope, and every reply says how long the server spent on it (``Server-Timing``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from runyard import __version__
from runyard.console.session import NONCE_COOKIE, SESSION_COOKIE, Session, SessionSigner
from runyard.services import InvalidToken, NotFound, ServiceError, Services, UnstorableText
from runyard.services.errors import StorageUnavailable

#: Sent with every console page: private data is never cached, never framed, and only this
#: origin's own script and style run (the templates have no inline script or style).
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
#: Sent by the console's script when it asks for a fragment of a page rather than the page.
FRAGMENT_HEADER = "x-runyard-fragment"
#: List pages' query; result pages allow offsets up to any real row count.
Offset = Annotated[int, Query(ge=0, le=10**12)]
Limit = Annotated[int, Query(ge=1, le=100)]


class SignInRequired(Exception):
    """No valid session: the page redirects to sign-in and comes back afterwards."""


class CsrfFailed(Exception):
    """A form without the token of this browser's session."""


def _timestamp(value: int | float | None) -> str:
    if not value:
        return ""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(value: int | float | None) -> str:
    if not value:
        return ""
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


def _duration(seconds: int | None) -> str:
    if not seconds:
        return "0 s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _thousands(value: int) -> str:
    return f"{value:,}"


templates = Environment(
    loader=PackageLoader("runyard.console", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(
    timestamp=_timestamp, iso=_iso, duration=_duration, thousands=_thousands, quote=quote
)
templates.globals.update(version=__version__, static_base="/-/static")


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a console request."""

    user_id: int
    session: Session


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def console(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


class Console:
    """Per-application console state: the session signer."""

    def __init__(self, svc: Services) -> None:
        self.signer = SessionSigner(
            svc.settings.resolved_secret_key(), svc.settings.console_session_seconds
        )

    def session(self, request: Request) -> Session | None:
        return self.signer.read(request.cookies.get(SESSION_COOKIE))

    def nonce(self, request: Request) -> str:
        """This browser's CSRF nonce; a new one (set on the reply by ``render``) if it has none."""
        nonce: str | None = getattr(request.state, "csrf_nonce", None)
        if nonce is None:
            nonce = request.cookies.get(NONCE_COOKIE) or self.signer.new_nonce()
            request.state.csrf_nonce = nonce
        return nonce

    def csrf_token(self, request: Request) -> str:
        return self.signer.csrf_token(self.nonce(request), self.session(request))

    async def form(self, request: Request) -> FormData:
        """The posted form, after its CSRF token and origin are checked."""
        form = await request.form()
        origin = request.headers.get("origin")
        if origin is not None and origin not in _origins(request):
            raise CsrfFailed
        token = form.get("csrf")
        if not isinstance(token, str) or not self.signer.check_csrf(
            token, request.cookies.get(NONCE_COOKIE), self.session(request)
        ):
            raise CsrfFailed
        return form

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status_code: int = 200,
    ) -> HTMLResponse:
        body = templates.get_template(template).render(
            {
                "request": request,
                "path": request.url.path,
                "csrf": self.csrf_token(request),
                "signed_in": self.session(request) is not None,
                **(context or {}),
            }
        )
        response = HTMLResponse(body, status_code=status_code)
        nonce = self.nonce(request)
        if request.cookies.get(NONCE_COOKIE) != nonce:
            set_cookie(request, response, NONCE_COOKIE, nonce)
        return response


def _origins(request: Request) -> set[str]:
    """Where this site's own forms come from: the address asked, and ``RUNYARD_PUBLIC_URL``
    (behind a TLS proxy the server itself may see plain http)."""
    found = {f"{request.url.scheme}://{request.url.netloc}"}
    public = services(request).settings.public_url
    if public:
        parts = urlsplit(public)
        found.add(f"{parts.scheme}://{parts.netloc}")
    return found


def _is_https(request: Request) -> bool:
    public = services(request).settings.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


def set_cookie(
    request: Request,
    response: Response,
    name: str,
    value: str,
    *,
    max_age: int | None = None,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_is_https(request),
    )


async def signed_in(request: Request) -> Viewer:
    """The viewer of a page that needs a session; ``SignInRequired`` without a valid one."""
    session = console(request).session(request)
    if session is None:
        raise SignInRequired
    try:
        user_id = services(request).accounts.authenticate_hash(session.key_hash)
    except InvalidToken:
        raise SignInRequired from None
    # The key is proven: the rate limiter (api/limits.py) counts its requests by its hash.
    request.state.verified_key_hash = session.key_hash
    return Viewer(user_id=user_id, session=session)


def session_key_hash(request: Request) -> str | None:
    """The key hash of the request's session, if its cookie is valid: what the rate limiter
    counts console pages by."""
    session = console(request).session(request)
    return session.key_hash if session else None


def refusal_page(request: Request, status: int, title: str, message: str) -> Response:
    """The page for a request refused before any console route ran (rate, size)."""
    response = _error_page(request, status, title, message, None)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


SignedIn = Annotated[Viewer, Depends(signed_in)]


def fragment(request: Request) -> str | None:
    """The part of the page the console's script asks for, if it asks for one."""
    return request.headers.get(FRAGMENT_HEADER)


def local_path(target: str | None, default: str = "/runs") -> str:
    """``target`` if it is a path on this site, else ``default``: no open redirects."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _error_page(request: Request, status: int, title: str, message: str, details: Any) -> Response:
    return console(request).render(
        request,
        "error.html",
        {"title": title, "message": message, "details": details or []},
        status_code=status,
    )


def _problem(request: Request, exc: Exception) -> Response:
    if isinstance(exc, SignInRequired):
        if request.method == "GET":
            # The console takes no key in its addresses: a ``token`` there is dropped, not
            # carried on through sign-in (and into every log on the way, proxies' included).
            query = urlencode(
                [(k, v) for k, v in request.query_params.multi_items() if k.lower() != "token"]
            )
            target = request.url.path + (f"?{query}" if query else "")
            return redirect(f"/sign-in?next={quote(target, safe='')}")
        return redirect("/sign-in")
    if isinstance(exc, CsrfFailed):
        return _error_page(
            request,
            403,
            "Form expired",
            "This form was not sent from this console, or your session changed since it was "
            "shown. Go back, reload the page and send it again.",
            None,
        )
    if isinstance(exc, NotFound):
        return _error_page(request, 404, "Not found", exc.message, None)
    if isinstance(exc, ServiceError):
        return _error_page(request, 400, "Not possible", exc.message, exc.details)
    if isinstance(exc, UnstorableText):
        return _error_page(request, 400, "Bad request", str(exc), None)
    if isinstance(exc, StorageUnavailable):
        # What the API answers too (429, Retry-After): nothing was kept, so sending the form
        # again later is safe.
        page = _error_page(request, 429, "Try again later", exc.message, None)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    if isinstance(exc, HTTPException):  # e.g. a form Starlette could not parse, or too big
        page = _error_page(request, exc.status_code, "Bad request", str(exc.detail), None)
        page.headers.update(exc.headers or {})
        return page
    assert isinstance(exc, RequestValidationError)
    details = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    return _error_page(
        request, 400, "Bad request", "The address has a value that does not fit.", details
    )


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except (
                SignInRequired,
                CsrfFailed,
                ServiceError,
                UnstorableText,
                StorageUnavailable,
                RequestValidationError,
                HTTPException,
            ) as exc:
                response = _problem(request, exc)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            elapsed = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"app;dur={elapsed:.1f}"
            return response

        return route
