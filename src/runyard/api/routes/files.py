"""The file endpoint behind signed download links: no API key, the signature is the grant."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from runyard.api.auth import services
from runyard.api.schemas import REQUEST_ID_HEADER, ErrorEnvelope, responses
from runyard.services import NotFound
from runyard.services.links import FILES_PATH
from runyard.services.runlog import LINK_PREFIX as LOG_LINK_PREFIX

router = APIRouter(tags=["files"])


PATH = FILES_PATH.removeprefix("/api/v2") + "/{name}/{filename}"


@router.get(
    PATH,
    summary="Download an export file or a run log",
    response_class=FileResponse,
    responses={
        **responses(None, public=True),
        200: {"description": "The file, as an attachment; supports byte ranges."},
        206: {"description": "Partial content for a `Range` request."},
        404: {
            "model": ErrorEnvelope,
            "description": "Tampered, expired or unknown link (11004)",
            "headers": REQUEST_ID_HEADER,
        },
    },
)
def download(
    request: Request, name: str, filename: str, expires: str = "", signature: str = ""
) -> Response:
    # Malformed link parameters are a bad link, not a validation problem: 404 like any other.
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12) or not signature:
        raise NotFound("download link is invalid or has expired")
    svc = services(request)
    if name.startswith(LOG_LINK_PREFIX):
        text = svc.logs.download(name, filename, int(expires), signature)
        return StreamingResponse(text, media_type="text/plain; charset=utf-8")
    file = svc.exports.resolve(name, filename, int(expires), signature)
    if not _inside(file.path, svc.settings.files_dir):
        raise NotFound("download link is invalid or has expired")
    fd = _open_plain(file.path)
    if fd is None:
        raise NotFound("download link is invalid or has expired")
    return _DescriptorResponse(
        fd,
        file.path,
        media_type=file.media_type,
        filename=file.filename,
        content_disposition_type="attachment",
    )


def _open_plain(path: Path) -> int | None:
    """``path`` opened for reading if it is still a plain file: ``_inside`` checked the path,
    but something writing to ``files_dir`` could swap in a symlink (refused by O_NOFOLLOW) or a
    FIFO (O_NONBLOCK: the open does not hang) before this open. What is served is then what was
    opened here, never the path opened again."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


class _DescriptorResponse(FileResponse):
    """``FileResponse`` (HEAD, ranges, ETag) reading an open descriptor instead of its path."""

    def __init__(self, fd: int, path: Path, **options: Any) -> None:
        super().__init__(path, stat_result=os.fstat(fd), **options)
        self.fd = fd

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions") or {}
        if "http.response.pathsend" in extensions:
            # That would have the server open the path itself.
            extensions = {k: v for k, v in extensions.items() if k != "http.response.pathsend"}
            scope = {**scope, "extensions": extensions}
        try:
            await super().__call__(scope, receive, send)
        finally:
            os.close(self.fd)

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        # Starlette opens the file here for each transfer (a whole file, or each range); a
        # duplicate of the descriptor, so that closing it leaves ours open for the next.
        file = anyio.AsyncFile(os.fdopen(os.dup(self.fd), "rb"))
        try:
            yield file
        finally:
            with anyio.CancelScope(shield=True):
                await file.aclose()


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is a plain file of ``root`` itself. A symlink is never served, even
    one into ``root``: anything able to write there (a worker running as the server's user)
    could otherwise turn a download link into a read of any file the server can read."""
    try:
        return not path.is_symlink() and path.is_file() and path.resolve().parent == root.resolve()
    except OSError:
        return False


# HEAD answers like GET without the body; one documented operation is enough.
router.add_api_route(PATH, download, methods=["HEAD"], include_in_schema=False)
