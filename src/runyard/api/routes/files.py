"""The file endpoint behind signed download links: no API key, the signature is the grant."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response, StreamingResponse

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
    return FileResponse(
        file.path,
        media_type=file.media_type,
        filename=file.filename,
        content_disposition_type="attachment",
    )


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
