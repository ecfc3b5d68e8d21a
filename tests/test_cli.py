"""The ``runyard`` command: users, keys and imports, as an operator types them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from runyard.cli import app
from runyard.services import Services
from runyard.settings import Settings
from tests.served import free_port

runner = CliRunner()


def cli(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    assert cli(d, "users", "create", "alice")[0] == 0
    return d


def _rows(data_dir: Path, slug: str) -> list[str]:
    svc = Services(Settings(data_dir=data_dir))
    try:
        run, _ = svc.runs.find(svc.accounts.user_id("alice"), slug)
        return svc.rows.read(run.id, 0, 10**9)
    finally:
        svc.close()


def _run_count(data_dir: Path) -> int:
    svc = Services(Settings(data_dir=data_dir))
    try:
        with svc.db.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM runs").scalar_one())
    finally:
        svc.close()


def test_keys_create_prints_the_key_alone(data_dir: Path) -> None:
    code, out, _ = cli(data_dir, "keys", "create", "--user", "alice")
    assert code == 0
    assert re.fullmatch(r"ry_[A-Za-z0-9_-]{43}\n", out)


def test_keys_list_shows_prefixes_never_keys_and_revoke(data_dir: Path) -> None:
    key = cli(data_dir, "keys", "create", "--user", "alice")[1].strip()
    code, out, _ = cli(data_dir, "keys", "list")
    assert code == 0
    assert key[:10] in out and key not in out
    assert cli(data_dir, "keys", "revoke", "1")[0] == 0
    svc = Services(Settings(data_dir=data_dir))
    try:
        assert svc.accounts.list_keys("alice")[0].revoked_at is not None
    finally:
        svc.close()


def test_unknown_user_is_one_line_and_exit_1(data_dir: Path) -> None:
    code, out, err = cli(data_dir, "keys", "create", "--user", "bob")
    assert code == 1 and out == ""
    assert err.strip() == "error: unknown user 'bob'"
    assert cli(data_dir, "users", "create", "alice")[0] == 1  # already exists
    assert cli(data_dir, "keys", "revoke", "99")[0] == 1


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("rows.jsonl", '{"b":1,"a":"x"}\n\n{"c":[1,2]}\n', None),
        ("rows.json", '[\n  {"b":1,"a":"x"},\n  {"c":[1,2]}\n]\n', None),
        ("rows.txt", '[{"b":1,"a":"x"},{"c":[1,2]}]', "json"),
    ],
)
def test_import_json_and_jsonl_keep_text(
    data_dir: Path, tmp_path: Path, name: str, content: str, fmt: str | None
) -> None:
    path = tmp_path / name
    path.write_text(content)
    args = ["runs", "import", str(path), "--user", "alice", "--worker", "w"]
    code, out, _ = cli(data_dir, *args, *(["--format", fmt] if fmt else []))
    assert code == 0
    slug = out.strip()
    assert re.fullmatch(r"[0-9A-Z]{26}", slug)
    assert _rows(data_dir, slug) == ['{"b":1,"a":"x"}', '{"c":[1,2]}']


def test_import_csv(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes('\ufefftitle,note\r\nA,"multi\r\nline, quoted"\r\nB,\r\n'.encode())
    code, out, _ = cli(data_dir, "runs", "import", str(path), "--user", "alice", "--worker", "w")
    assert code == 0
    rows = [json.loads(r) for r in _rows(data_dir, out.strip())]
    assert rows == [{"title": "A", "note": "multi\r\nline, quoted"}, {"title": "B", "note": ""}]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", '{"a":1}\n{"a":2}\n{"a":\n', "line 3: "),
        ("bad.jsonl", '{"a":1}\n[1,2]\n', "line 2: a row must be a JSON object"),
        ("bad.json", '[{"a":1},\n{"a":2},\n{"a" 3}]', "line 3: invalid JSON"),
        ("bad.json", '[{"a":1}\n{"a":2}]', "line 2: expected ',' or ']'"),
        ("bad.json", '{"a":1}', "line 1: expected '['"),
        ("bad.csv", "a,b\n1,2\n1,2,3\n", "line 3: 3 cells where the header has 2"),
        ("bad.jsonl", b'{"a":"\xff"}\n', "not UTF-8"),
    ],
)
def test_malformed_file_leaves_nothing_behind(
    data_dir: Path, tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code, out, err = cli(data_dir, "runs", "import", str(path), "--user", "alice", "--worker", "w")
    assert code == 1 and out == ""
    assert err.startswith(f"error: {name}: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert _run_count(data_dir) == 0


def test_malformed_row_after_many_batches_leaves_nothing(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text("".join(f'{{"i":{i}}}\n' for i in range(5000)) + "not json\n")
    code, _, err = cli(data_dir, "runs", "import", str(path), "--user", "alice", "--worker", "w")
    assert code == 1 and "line 5001" in err
    assert _run_count(data_dir) == 0


def test_import_errors_for_missing_file_and_user(data_dir: Path, tmp_path: Path) -> None:
    code, _, err = cli(
        data_dir, "runs", "import", str(tmp_path / "nope.jsonl"), "--user", "alice", "--worker", "w"
    )
    assert code == 1 and "cannot read" in err
    (tmp_path / "ok.jsonl").write_text('{"a":1}\n')
    code, _, err = cli(
        data_dir, "runs", "import", str(tmp_path / "ok.jsonl"), "--user", "zed", "--worker", "w"
    )
    assert code == 1 and err.strip() == "error: unknown user 'zed'"
    assert _run_count(data_dir) == 0


@pytest.mark.parametrize("slug", ["a/b", "Upper", "-dash", ""])
def test_import_refuses_a_bad_worker_slug(data_dir: Path, tmp_path: Path, slug: str) -> None:
    (tmp_path / "ok.jsonl").write_text('{"a":1}\n')
    code, _, err = cli(
        data_dir, "runs", "import", str(tmp_path / "ok.jsonl"), "--user", "alice", "--worker", slug
    )
    assert code == 1 and "invalid worker slug" in err
    assert _run_count(data_dir) == 0


def test_data_dir_from_environment(tmp_path: Path) -> None:
    d = tmp_path / "from-env"
    result = runner.invoke(app, ["users", "create", "eve"], env={"RUNYARD_DATA_DIR": str(d)})
    assert result.exit_code == 0
    assert (d / "runyard.db").exists()


def test_serve_first_start_prints_a_working_key_and_never_logs_tokens(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runyard",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        banner = "".join(lines)
        key = re.search(r"ry_[A-Za-z0-9_-]{43}", banner)
        assert key, banner
        assert f"curl -H 'Authorization: Bearer {key.group()}'" in banner
        resp = httpx.get(
            f"http://127.0.0.1:{port}/api/v2/worker-runs/last/result",
            params={"token": key.group()},
        )
        assert resp.status_code == 404 and resp.json()["code"] == 11004  # no runs yet
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=20)
    log = banner + rest
    assert re.search(
        r'"GET /api/v2/worker-runs/last/result\?token=\[redacted\]" 404 [0-9.]+ms req-', log
    ), log
    assert log.count(key.group()) == 2  # the banner's key and its curl line, nothing else


def test_weak_secret_key_is_one_line_error(tmp_path: Path) -> None:
    d = tmp_path / "weak"
    d.mkdir()
    (d / "secret.key").write_text("")
    code, _, err = cli(d, "users", "create", "x")
    assert code == 1
    assert err.strip() == "error: the link-signing key must have at least 32 characters"


def test_an_import_killed_mid_way_is_removed_later(data_dir: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    big.write_text("".join(f'{{"i":{i},"pad":"{"x" * 200}"}}\n' for i in range(400_000)))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runyard",
            "runs",
            "import",
            str(big),
            "--user",
            "alice",
            "--worker",
            "w",
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    svc = Services(Settings(data_dir=data_dir))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until some rows are committed
            with svc.db.engine.connect() as conn:
                stored = conn.exec_driver_sql("SELECT count(*) FROM result_rows").scalar_one()
            if stored > 0:
                break
            time.sleep(0.05)
        assert stored > 0
        proc.kill()
        proc.wait()
        assert _run_count(data_dir) == 1  # the half-made run is still there...
        assert len(svc.imports.clean_abandoned()) == 1  # ...until the next start or import
        assert _run_count(data_dir) == 0
        with svc.db.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM result_rows").scalar_one() == 0
        assert list((data_dir / "locks").iterdir()) == []
    finally:
        proc.kill()
        svc.close()


def test_a_live_import_is_not_cleaned(data_dir: Path) -> None:
    svc = Services(Settings(data_dir=data_dir))
    try:
        uid = svc.accounts.user_id("alice")
        worker = svc.runs.ensure_worker(uid, "w")
        _, slug = svc.runs.create(uid, worker, version="import", origin="cli", status="running")
        with svc.imports._holding(slug):
            assert svc.imports.clean_abandoned() == []
            assert _run_count(data_dir) == 1
    finally:
        svc.close()


def _package(root: Path, **worker_json: object) -> Path:
    root.mkdir()
    (root / "main.py").write_text("from runyard import sdk\nsdk.push({'ok': True})\n")
    (root / "input_schema.json").write_text('{"properties": []}')
    (root / "output_schema.json").write_text("[]")
    if worker_json:
        (root / "worker.json").write_text(json.dumps(worker_json))
    return root


def test_workers_add_registers_numbered_versions(data_dir: Path, tmp_path: Path) -> None:
    package = _package(tmp_path / "hello", title="Hello", description="Says hello")
    code, out, err = cli(data_dir, "workers", "add", str(package), "--user", "alice")
    assert code == 0, err
    assert out.strip() == "hello 1.0.0"
    assert cli(data_dir, "workers", "add", str(package), "--user", "alice")[1].strip() == (
        "hello 1.0.1"
    )
    code, out, err = cli(
        data_dir, "workers", "add", str(package), "--user", "alice", "--version", "1.0.1"
    )
    assert code == 1 and out == ""
    assert err.strip().startswith("error: version 1.0.1 of hello already exists")
    svc = Services(Settings(data_dir=data_dir))
    try:
        detail = svc.workers.detail(svc.accounts.user_id("alice"), "hello")
    finally:
        svc.close()
    assert (detail.title, detail.version) == ("Hello", "1.0.1")


def test_workers_add_names_every_problem_of_a_bad_package(data_dir: Path, tmp_path: Path) -> None:
    package = tmp_path / "broken"
    package.mkdir()
    (package / "input_schema.json").write_text('{"properties": [{"name": "x", "type": "nope"}]}')
    code, out, err = cli(data_dir, "workers", "add", str(package), "--user", "alice")
    assert code == 1 and out == ""
    assert "main.py" in err and "output_schema.json" in err and "input_schema.json" in err


def test_workers_add_takes_a_zip(data_dir: Path, tmp_path: Path) -> None:
    import shutil

    package = _package(tmp_path / "zipped-hello")
    archive = shutil.make_archive(str(tmp_path / "zipped-hello"), "zip", package)
    code, out, err = cli(data_dir, "workers", "add", archive, "--user", "alice")
    assert code == 0, err
    assert out.strip() == "zipped-hello 1.0.0"
