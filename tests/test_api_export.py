"""``GET /worker-runs/{runId}/result/export`` and the signed file endpoint, over real HTTP."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import openpyxl
import pytest

from runyard.services import NotFound
from runyard.storage.ingest import RowIngestor
from tests.conftest import Server, User

pytestmark = pytest.mark.both_databases

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xls": "application/vnd.ms-excel",
    "xml": "application/xml; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "rss": "application/rss+xml; charset=utf-8",
}

ROWS = [
    {"title": "Café ☕", "url": "https://example.com/a", "price": 3.5, "tags": ["x", "y"]},
    {"title": 'Say "hi", then\nleave', "url": "https://example.com/b", "price": None},
    {"title": "=1+1", "extra": {"deep": True}},
]


def export_url(api: httpx.Client, run: str, **params: str) -> str:
    resp = api.get(f"/api/v2/worker-runs/{run}/result/export", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["code"] == 0 and body["message"] == "success"
    assert set(body["data"]) == {"download_url"}
    return str(body["data"]["download_url"])


def download(url: str, **kwargs: object) -> httpx.Response:
    # No API key: the signature is the grant.
    return httpx.get(url, timeout=120, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_downloads_as_an_attachment(
    server: Server, user: User, api: httpx.Client, fmt: str
) -> None:
    run = server.run(user, ROWS, worker="shop-scraper")
    url = export_url(api, run, format=fmt.upper())
    assert url.startswith(server.url + "/api/v2/files/")
    resp = download(url)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == FORMATS[fmt]
    assert resp.headers["content-disposition"] == (
        f'attachment; filename="shop-scraper_{run}.{fmt}"'
    )
    assert int(resp.headers["content-length"]) == len(resp.content) > 0


def test_default_format_is_csv_with_bom_crlf_and_all_headers(
    server: Server, user: User, api: httpx.Client
) -> None:
    run = server.run(user, ROWS)
    content = download(export_url(api, run)).content
    assert content.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in content
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["title", "url", "price", "tags", "extra"]
    assert rows[1] == ["Café ☕", "https://example.com/a", "3.5", '["x","y"]', ""]
    assert rows[2] == ['Say "hi", then\nleave', "https://example.com/b", "", "", ""]
    assert rows[3] == ["=1+1", "", "", "", '{"deep":true}']


def test_csv_options_bom_and_delimiter(server: Server, user: User, api: httpx.Client) -> None:
    run = server.run(user, [{"a": 1, "b": "x;y"}])
    content = download(export_url(api, run, bom="0", delimiter=";")).content
    assert content == b'a;b\r\n1;"x;y"\r\n'
    resp = api.get(f"/api/v2/worker-runs/{run}/result/export", params={"delimiter": "ab"})
    assert resp.status_code == 422 and resp.json()["code"] == 11000


def test_filter_keys_trimmed_deduplicated_in_order(
    server: Server, user: User, api: httpx.Client
) -> None:
    run = server.run(user, ROWS)
    url = export_url(api, run, format="json", filter_keys=" url , ,title,url,nowhere")
    assert json.loads(download(url).content) == [
        {"url": r.get("url"), "title": r.get("title"), "nowhere": None} for r in ROWS
    ]


def test_json_without_filter_keeps_rows_verbatim(
    server: Server, user: User, api: httpx.Client
) -> None:
    texts = ['{"b":1,"a":"ü"}', '{"c":[1,{"d":null}]}']
    run = server.run(user, texts)
    content = download(export_url(api, run, format="json")).content
    assert json.loads(content) == [json.loads(t) for t in texts]
    for text in texts:
        assert text.encode() in content
    jsonl = download(export_url(api, run, format="jsonl")).content
    assert jsonl.decode().splitlines() == texts


def test_xlsx_reads_back_cell_by_cell(server: Server, user: User, api: httpx.Client) -> None:
    run = server.run(user, ROWS)
    content = download(export_url(api, run, format="xlsx")).content
    sheet = openpyxl.load_workbook(io.BytesIO(content), read_only=True).worksheets[0]
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0] == ["title", "url", "price", "tags", "extra"]
    assert values[1] == ["Café ☕", "https://example.com/a", 3.5, '["x","y"]', None]
    assert values[3][0] == "=1+1"  # a string, never a formula


def test_unsupported_format_is_422_with_the_list(
    server: Server, user: User, api: httpx.Client
) -> None:
    run = server.run(user, ROWS)
    resp = api.get(f"/api/v2/worker-runs/{run}/result/export", params={"format": "pdf"})
    assert resp.status_code == 422
    body = resp.json()
    assert body["code"] == 11000 and body["data"] is None
    assert all(f in body["details"][0] for f in FORMATS)


def test_empty_run_exports_header_only(server: Server, user: User, api: httpx.Client) -> None:
    run = server.run(user, [])
    assert json.loads(download(export_url(api, run, format="json")).content) == []
    assert download(export_url(api, run, format="csv")).content == b"\xef\xbb\xbf"
    csv_text = download(export_url(api, run, format="csv", filter_keys="a,b")).content
    assert csv_text == b"\xef\xbb\xbfa,b\r\n"


def test_export_is_a_snapshot_of_the_rows_at_request_time(
    server: Server, user: User, api: httpx.Client
) -> None:
    svc = server.services
    worker_id = svc.runs.ensure_worker(user.id, "live")
    run_id, slug = svc.runs.create(user.id, worker_id, version="1", origin="cli", status="running")
    ingest = RowIngestor(svc.db, svc.rows, run_id)
    for i in range(3):
        ingest.add(f'{{"i":{i}}}', {"i": i})
    ingest.flush()
    url = export_url(api, slug, format="jsonl")
    csv_url = export_url(api, slug, format="csv", bom="0")
    for i in range(3, 10):
        ingest.add(f'{{"i":{i},"late":true}}', {"i": i, "late": True})
    ingest.flush()
    assert download(url).content.decode().splitlines() == ['{"i":0}', '{"i":1}', '{"i":2}']
    # Columns are part of the snapshot too: a key first seen later is not in the file.
    assert download(csv_url).content == b"i\r\n0\r\n1\r\n2\r\n"
    later = download(export_url(api, slug, format="jsonl")).content
    assert len(later.decode().splitlines()) == 10
    assert download(export_url(api, slug, format="csv")).content.splitlines()[0].endswith(b"i,late")


def test_finished_runs_identical_export_is_reused(
    server: Server, user: User, api: httpx.Client
) -> None:
    run = server.run(user, ROWS)
    first = urlsplit(export_url(api, run, format="xml")).path
    second = urlsplit(export_url(api, run, format="xml")).path
    other = urlsplit(export_url(api, run, format="xml", filter_keys="title")).path
    assert first == second != other


def test_head_and_range(server: Server, user: User, api: httpx.Client) -> None:
    run = server.run(user, [{"i": i} for i in range(1000)])
    url = export_url(api, run, format="jsonl")
    full = download(url).content
    head = httpx.head(url)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(full)
    assert head.content == b""
    part = download(url, headers={"Range": "bytes=10-29"})
    assert part.status_code == 206
    assert part.content == full[10:30]
    assert part.headers["content-range"] == f"bytes 10-29/{len(full)}"


@pytest.mark.parametrize("tamper", ["name", "signature", "expires", "filename", "missing"])
def test_tampered_links_are_404_11004(
    server: Server, user: User, api: httpx.Client, tamper: str
) -> None:
    run = server.run(user, ROWS)
    url = export_url(api, run, format="csv")
    other_name = urlsplit(export_url(api, run, format="json")).path.rsplit("/", 2)[1]
    assert download(url).status_code == 200  # the untouched link works
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    _, name, filename = parts.path.rsplit("/", 2)
    if tamper == "name":
        name = other_name  # a real export, but not the one this link was signed for
    elif tamper == "filename":
        filename = "other.csv"
    elif tamper == "signature":
        query["signature"] = query["signature"][:-1] + (
            "0" if query["signature"][-1] != "0" else "1"
        )
    elif tamper == "expires":
        query["expires"] = str(int(query["expires"]) + 1)
    else:
        query = {}
    resp = httpx.get(f"{server.url}/api/v2/files/{name}/{filename}", params=query)
    assert resp.status_code == 404
    assert resp.json()["code"] == 11004


@pytest.mark.parametrize(
    "query",
    [
        {"expires": "²", "signature": "0" * 64},
        {"expires": "9" * 5000, "signature": "0" * 64},
        {"expires": "1", "signature": "é"},
        {"expires": "-1", "signature": "x"},
    ],
)
def test_garbage_link_parameters_are_404_not_500(server: Server, query: dict) -> None:
    resp = httpx.get(f"{server.url}/api/v2/files/01ARZ3NDEKTSV4RRFFQ69G5FAV/x.csv", params=query)
    assert resp.status_code == 404 and resp.json()["code"] == 11004


def test_expired_link_is_404(server: Server, user: User, api: httpx.Client) -> None:
    run = server.run(user, ROWS, worker="w")
    url = export_url(api, run, format="csv")
    name, filename = urlsplit(url).path.rsplit("/", 2)[1:]
    signer = server.services.signer
    # The same export and file, signed correctly but a TTL in the past.
    expired = signer.url(server.url, name, filename, expires=signer.expiry() - signer.ttl - 5)
    assert download(url).status_code == 200
    resp = download(expired)
    assert resp.status_code == 404 and resp.json()["code"] == 11004


def test_a_failed_export_is_reported_not_redone(
    server: Server, user: User, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = server.run(user, ROWS)
    calls = []

    def broken(*_a: object, **_k: object) -> None:
        calls.append(1)
        raise OSError("disk full")

    monkeypatch.setattr("runyard.formats.html.HtmlWriter.write", broken)
    url = export_url(api, run, format="html")
    for _ in range(3):
        resp = download(url)
        assert resp.status_code == 500 and resp.json()["code"] == 10000
        assert "disk" not in resp.text
    assert len(calls) == 1
    monkeypatch.undo()
    # Asking again makes a new export, which works.
    assert download(export_url(api, run, format="html")).status_code == 200


def test_empty_run_export_twice_does_not_hang(
    server: Server, user: User, api: httpx.Client
) -> None:
    run = server.run(user, [])
    for _ in range(3):
        assert download(export_url(api, run, format="csv")).content == b"\xef\xbb\xbf"


def test_link_expiry_follows_the_setting(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(link_ttl_seconds=120)
    user = srv.user()
    with srv.client(user) as api:
        url = export_url(api, srv.run(user, ROWS))
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    assert abs(expires - (time.time() + 120)) < 10


def test_public_url_setting_builds_the_link(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(public_url="https://data.example.org/")
    user = srv.user()
    with srv.client(user) as api:
        url = export_url(api, srv.run(user, ROWS))
    assert url.startswith("https://data.example.org/api/v2/files/")


def test_last_forms(server: Server, user: User, api: httpx.Client) -> None:
    server.run(user, [{"w": "a"}], worker="alpha")
    server.run(user, [{"w": "b"}], worker="beta")
    server.run(server.user(), [{"w": "other"}], worker="alpha")
    newest = json.loads(download(export_url_at(api, "/api/v2/worker-runs/last/export")).content)
    assert newest == [{"w": "b"}]
    alpha = "/api/v2/workers/alpha/runs/last"
    assert api.get(f"{alpha}/result").json()["data"]["list"] == [{"w": "a"}]
    assert json.loads(download(export_url_at(api, f"{alpha}/export")).content) == [{"w": "a"}]
    by_path = f"/api/v2/workers/{user.name}~alpha/runs/last/result"
    assert api.get(by_path).json()["data"]["list"] == [{"w": "a"}]
    for missing in (
        "/api/v2/workers/nope/runs/last/result",
        "/api/v2/workers/nope/runs/last/export",
    ):
        resp = api.get(missing)
        assert resp.status_code == 404 and resp.json()["code"] == 11004


def export_url_at(api: httpx.Client, path: str) -> str:
    resp = api.get(path, params={"format": "json"})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["data"]["download_url"])


def test_trailing_slash_is_a_404_envelope_not_a_redirect(
    server: Server, user: User, api: httpx.Client
) -> None:
    run = server.run(user, ROWS)
    resp = api.get(f"/api/v2/worker-runs/{run}/result/")
    assert resp.status_code == 404 and resp.json()["code"] == 11004


def test_big_integers_keep_their_digits(server: Server, user: User, api: httpx.Client) -> None:
    text = '{"id":123456789012345678901234567890,"n":18446744073709551616}'
    run = server.run(user, [text])
    assert text.encode() in api.get(f"/api/v2/worker-runs/{run}/result").content
    content = download(export_url(api, run, format="csv", bom="0")).content
    assert content == b"id,n\r\n123456789012345678901234567890,18446744073709551616\r\n"
    projected = download(export_url(api, run, format="json", filter_keys="n")).content
    assert b"18446744073709551616" in projected


def test_sweep_deletes_exports_whose_links_all_expired(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server()
    svc = server.services
    user = server.user()
    run = server.run(user, ROWS)
    api = server.client(user)
    old_url = export_url(api, run, format="xml")
    assert download(old_url).status_code == 200
    name = urlsplit(old_url).path.rsplit("/", 2)[1]
    old_file = svc.files.path(f"{name}.xml")
    assert old_file is not None
    # Asking again for the same export extends its life: the sweep keeps it until then.
    assert urlsplit(export_url(api, run, format="xml")).path.rsplit("/", 2)[1] == name
    expires_at = svc.exports.get(name).links_expire_at
    assert svc.exports.sweep(now=expires_at - 1) == 0
    assert old_file.exists()
    assert svc.exports.sweep(now=expires_at + 1) == 1
    assert not old_file.exists()
    with pytest.raises(NotFound):
        svc.exports.get(name)
    # A new request makes a new export, which works.
    assert download(export_url(api, run, format="xml")).status_code == 200


def test_sweep_removes_only_stale_temporary_files(server: Server) -> None:
    files = server.services.files
    stale = files.root / ".dead.csv.1234.tmp"
    fresh = files.root / ".alive.csv.5678.tmp"
    stale.write_text("half")
    fresh.write_text("half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert files.sweep_temporary(older_than=time.time() - 3600) == 1
    assert not stale.exists() and fresh.exists()
    fresh.unlink()
