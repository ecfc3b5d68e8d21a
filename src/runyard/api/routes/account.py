"""The caller's account (spec §4): remaining credit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from runyard.api.auth import caller, services
from runyard.api.envelope import JSONBytes, ok
from runyard.api.schemas import Account, responses

router = APIRouter(tags=["account"])


@router.get(
    "/users/account",
    summary="Get your account balance",
    response_class=JSONBytes,
    responses=responses(Account),
)
def get_account(request: Request, user_id: Annotated[int, Depends(caller)]) -> JSONBytes:
    return ok(request, services(request).accounts.balance(user_id))
