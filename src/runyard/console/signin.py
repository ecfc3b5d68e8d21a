"""Sign in with an API key, sign out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from runyard.console.session import NONCE_COOKIE, SESSION_COOKIE
from runyard.console.web import ConsoleRoute, console, local_path, redirect, services, set_cookie
from runyard.services import InvalidToken
from runyard.services.accounts import hash_key

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


@router.get("/")
async def home(request: Request) -> Response:
    return redirect("/runs" if console(request).session(request) else "/sign-in")


def _sign_in_page(
    request: Request, next_path: str, problem: str = "", status: int = 200
) -> Response:
    hours = services(request).settings.console_session_seconds // 3600
    return console(request).render(
        request,
        "sign_in.html",
        {"next": next_path, "problem": problem, "session_hours": max(hours, 1)},
        status_code=status,
    )


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    return _sign_in_page(request, local_path(next))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    cons = console(request)
    form = await cons.form(request)
    next_path = local_path(str(form.get("next") or ""))
    key = str(form.get("api_key") or "").strip()
    try:
        if not key:
            raise InvalidToken("invalid token")
        services(request).accounts.authenticate(key)
    except InvalidToken:
        return _sign_in_page(request, next_path, "That API key is not valid.", status=401)
    response = redirect(next_path)
    set_cookie(
        request,
        response,
        SESSION_COOKIE,
        cons.signer.issue(hash_key(key)),
        max_age=cons.signer.max_age,
    )
    # A fresh nonce with the new session: no token shown before sign-in stays valid.
    set_cookie(request, response, NONCE_COOKIE, cons.signer.new_nonce())
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    await console(request).form(request)
    response = redirect("/sign-in")
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(NONCE_COOKIE, path="/")
    return response
