"""What a client user can get wrong, and odd replies: refused before sending, clearly."""

from __future__ import annotations

import inspect
import io
import os
import zipfile
from pathlib import Path

import httpx
import pytest

from runyard.client import AsyncClient, Client
from runyard.client._download import target
from runyard.client._package import archive
from runyard.client._retry import retry_after


@pytest.mark.parametrize("url", ["http://h:abc", "http://[::1", "http://", "ftp://h"])
def test_a_base_url_that_cannot_work_is_a_value_error(url: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        Client(url)


def test_a_key_a_header_cannot_carry_is_refused_without_quoting_it() -> None:
    with pytest.raises(ValueError) as caught:
        Client("http://127.0.0.1:1", "ry_SECRET\nInjected: 1")
    assert "SECRET" not in str(caught.value)
    # Whitespace around a pasted or file-read key is not part of it.
    assert Client("http://127.0.0.1:1", "  ry_key\n")._key == "ry_key"


@pytest.mark.parametrize("run", [".", ".."])
def test_dot_segments_are_not_ids(run: str) -> None:
    # httpx would resolve them away and the request would reach another route (the run list).
    with Client("http://127.0.0.1:1") as client, pytest.raises(ValueError, match="not an id"):
        client.get_run(run)


def test_a_pushed_directory_leaves_out_secrets_caches_and_links(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "main.py").write_text("print(1)\n")
    (pkg / "lib.py").write_text("X = 1\n")
    (pkg / ".env").write_text("TOKEN=secret\n")
    (pkg / ".env.local").write_text("TOKEN=secret\n")
    (pkg / "__pycache__" / "lib.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "outside.txt").write_text("not part of the package")
    os.symlink(tmp_path / "outside.txt", pkg / "link.txt")
    os.symlink(tmp_path, pkg / "linked-dir")
    with zipfile.ZipFile(io.BytesIO(archive(pkg))) as zf:
        assert sorted(zf.namelist()) == ["lib.py", "main.py"]


def test_a_damaged_zip_is_a_value_error_naming_it(tmp_path: Path) -> None:
    good = tmp_path / "w.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("main.py", "print('hello world')\n")
    data = bytearray(good.read_bytes())
    data[data.index(b"hello")] ^= 0xFF  # the stored bytes no longer match their CRC
    good.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"w\.zip: main\.py is damaged"):
        archive(good)


def test_a_retry_after_that_is_not_ascii_digits_is_ignored() -> None:
    response = httpx.Response(429, headers=[(b"retry-after", b"\xb2")])
    assert retry_after(response) is None
    assert retry_after(httpx.Response(429, headers={"retry-after": "3"})) == 3.0


def _named(disposition: str) -> str:
    request = httpx.Request("GET", "http://files.example/api/v2/files/x/fallback.csv")
    response = httpx.Response(200, headers={"content-disposition": disposition}, request=request)
    return target(response, None).name


def test_the_servers_file_name_is_reduced_to_a_plain_name() -> None:
    assert _named('attachment; filename="../../etc/passwd"') == "passwd"
    assert _named('attachment; filename=".."') == "download"
    # RFC 6266: filename* (UTF-8) is preferred over the plain fallback, wherever it stands.
    assert _named("attachment; filename=\"a.csv\"; filename*=UTF-8''caf%C3%A9.csv") == "café.csv"
    assert _named("") == "fallback.csv"


def test_async_client_mirrors_client_method_for_method() -> None:
    def public(cls: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(member).parameters)
            for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")
        }

    sync, async_ = public(Client), public(AsyncClient)
    sync.pop("close")
    async_.pop("aclose")
    assert sync == async_
