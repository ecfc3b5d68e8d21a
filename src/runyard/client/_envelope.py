"""Reading the envelope ``{code, message, data, request_id}`` of a reply."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from runyard.client._errors import ApiError


def data_of(response: httpx.Response) -> Any:
    """The reply's ``data``, or the ``ApiError`` it carries."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or "code" not in body:
        raise _not_an_envelope(response)
    request_id = body.get("request_id") or response.headers.get("x-request-id")
    if body["code"] != 0 or response.is_error:
        details = body.get("details")
        raise ApiError(
            response.status_code,
            int(body["code"]) if isinstance(body["code"], int) else 0,
            str(body.get("message") or response.reason_phrase),
            [str(d) for d in details] if isinstance(details, list) else None,
            request_id,
        )
    return body.get("data")


def raise_for_error(response: httpx.Response) -> None:
    """For downloads: an error reply becomes an ``ApiError``, a file passes."""
    if response.is_error:
        response.read()
        data_of(response)


def _not_an_envelope(response: httpx.Response) -> ApiError:
    text = response.text.strip().splitlines()
    first = text[0][:200] if text else ""
    message = response.reason_phrase or "unexpected reply"
    details = [first] if first else None
    return ApiError(response.status_code, 0, message, details, response.headers.get("x-request-id"))


async def araise_for_error(response: httpx.Response) -> None:
    if response.is_error:
        await response.aread()
        data_of(response)
