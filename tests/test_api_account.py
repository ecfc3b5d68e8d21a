"""Accounts and limits: balance, CPU-time pricing, credit and the concurrent-run maximum."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from runyard.cli import app
from runyard.services import InvalidInput, Services
from runyard.settings import Settings
from tests.conftest import Server, User, start, wait_for

pytestmark = pytest.mark.both_databases

BURN = """
import time
from runyard import sdk
start = time.process_time()
while time.process_time() - start < 0.3:
    pass
sdk.push({"done": True})
"""
#: The CPU is burnt by a grandchild the worker waits for: the whole tree is counted.
BURN_IN_CHILD = """
import subprocess, sys
subprocess.run([sys.executable, "-c", '''
import time
start = time.process_time()
while time.process_time() - start < 0.3:
    pass
'''], check=True)
"""
SLEEP = """
import time
time.sleep(60)
"""


def _account(api: httpx.Client) -> dict[str, object]:
    reply = api.get("/api/v2/users/account")
    assert reply.status_code == 200, reply.text
    data: dict[str, object] = reply.json()["data"]
    return data


def _run_count(api: httpx.Client) -> int:
    count: int = api.get("/api/v2/worker-runs").json()["data"]["count"]
    return count


def test_account_balance(server: Server, user: User, api: httpx.Client) -> None:
    assert _account(api) == {"balance": "0.00", "balance_expiration_at": 0}
    server.services.accounts.set_limits(user.name, credit="5")
    assert _account(api) == {"balance": "5.00", "balance_expiration_at": 0}
    server.services.accounts.set_limits(user.name, credit="12.3456")
    assert _account(api)["balance"] == "12.3456"
    anonymous = httpx.get(f"{server.url}/api/v2/users/account")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 12001


def test_without_a_price_a_run_costs_nothing(server: Server, user: User, api: httpx.Client) -> None:
    worker = server.worker(user, BURN)
    record = wait_for(api, start(api, worker))
    assert record["status"] == "succeeded"
    assert record["usage"] == "0.0000"


@pytest.mark.parametrize("main", [BURN, BURN_IN_CHILD], ids=["worker", "grandchild"])
def test_usage_is_cpu_time_times_price_and_is_taken_off_the_credit(
    server: Server, main: str
) -> None:
    user = server.user()
    server.services.accounts.set_limits(user.name, credit="100", price_per_cpu_second="10")
    worker = server.worker(user, main)
    with server.client(user) as api:
        run = start(api, worker)
        record = wait_for(api, run)
        assert record["status"] == "succeeded", record
        usage = Decimal(record["usage"])
        assert record["usage"] == format(usage.quantize(Decimal("0.0001")), "f")
        # 0.3 s of CPU (plus the interpreter's start) at 10 per CPU-second.
        assert Decimal(3) <= usage < Decimal(50), usage
        assert Decimal(str(_account(api)["balance"])) == Decimal(100) - usage
        # The price applies to the run's own time only: another run adds its own cost.
        second = wait_for(api, start(api, worker))
        left = Decimal(100) - usage - Decimal(second["usage"])
        assert Decimal(str(_account(api)["balance"])) == left


def test_used_up_credit_is_402_and_creates_nothing(server: Server) -> None:
    user = server.user()
    worker = server.worker(user, BURN)
    with server.client(user) as api:
        first = start(api, worker)
        wait_for(api, first)
        for credit in ("0", "-1.5"):
            server.services.accounts.set_limits(user.name, credit=credit)
            for path in (f"/api/v2/workers/{worker}/runs", f"/api/v2/worker-runs/{first}/rerun"):
                reply = api.post(path, json={})
                assert reply.status_code == 402, reply.text
                assert reply.json()["code"] == 30001
                assert reply.json()["message"] == "insufficient balance"
        assert _run_count(api) == 1
        server.services.accounts.set_limits(user.name, credit="0.01")
        wait_for(api, start(api, worker))
        server.services.accounts.set_limits(user.name, credit=None)
        wait_for(api, start(api, worker))
        assert _run_count(api) == 3


def test_concurrent_run_maximum_is_429_and_creates_nothing(server: Server) -> None:
    user = server.user()
    server.services.accounts.set_limits(user.name, max_concurrent_runs=1)
    sleeper = server.worker(user, SLEEP)
    with server.client(user) as api:
        busy = start(api, sleeper)
        for path in (f"/api/v2/workers/{sleeper}/runs", f"/api/v2/worker-runs/{busy}/rerun"):
            reply = api.post(path, json={})
            assert reply.status_code == 429, reply.text
            assert reply.json()["code"] == 30003
        assert _run_count(api) == 1
        # The limit is this user's: another one's runs are not counted nor held back.
        other = server.user()
        theirs_worker = server.worker(other, BURN)
        with server.client(other) as theirs:
            assert wait_for(theirs, start(theirs, theirs_worker))["status"] == "succeeded"
        assert api.post(f"/api/v2/worker-runs/{busy}/abort").status_code == 200
        assert wait_for(api, busy)["status"] == "failed"
        server.services.accounts.set_limits(user.name, max_concurrent_runs=2)
        runs = [start(api, sleeper), start(api, sleeper)]
        assert api.post(f"/api/v2/workers/{sleeper}/runs", json={}).status_code == 429
        for run in runs:
            api.post(f"/api/v2/worker-runs/{run}/abort")
        for run in runs:
            wait_for(api, run)
        server.services.accounts.set_limits(user.name, max_concurrent_runs=None)
        assert _run_count(api) == 3


runner = CliRunner()


def _cli(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stderr


def test_users_set_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _cli(data, "users", "create", "alice")[0] == 0
    code, said = _cli(
        data,
        "users",
        "set",
        "alice",
        "--credit",
        "25.5",
        "--price-per-cpu-second",
        "0.002",
        "--max-concurrent-runs",
        "3",
    )
    assert code == 0, said
    assert "credit 25.5" in said

    def limits() -> tuple[str | None, str | None, int | None]:
        svc = Services(Settings(data_dir=data))
        try:
            got = svc.accounts.limits(svc.accounts.user_id("alice"))
        finally:
            svc.close()
        return got.credit, got.price_per_cpu_second, got.max_concurrent_runs

    assert limits() == ("25.5", "0.002", 3)
    assert _cli(data, "users", "set", "alice", "--credit", "none")[0] == 0
    assert limits() == (None, "0.002", 3)  # only what was given changes
    assert _cli(data, "users", "set", "alice", "--max-concurrent-runs", "NONE")[0] == 0
    assert limits() == (None, "0.002", None)

    for args, words in (
        (["--credit", "lots"], "credit must be a decimal"),
        (["--credit", "nan"], "finite"),
        (["--price-per-cpu-second", "-1"], "at least 0"),
        (["--max-concurrent-runs", "two"], "whole number"),
        (["--max-concurrent-runs", "0"], "from 1 to"),
        ([], "nothing to set"),
    ):
        code, said = _cli(data, "users", "set", "alice", *args)
        assert code == 1, args
        assert words in said and "Traceback" not in said
        assert len(said.strip().splitlines()) == 1, said
    code, said = _cli(data, "users", "set", "bob", "--credit", "1")
    assert code == 1 and "unknown user 'bob'" in said
    assert limits() == (None, "0.002", None)


def test_racing_starts_never_pass_the_concurrent_run_limit(make_server) -> None:
    import threading

    srv: Server = make_server(max_concurrent_runs=4)
    user = srv.user()
    worker = srv.worker(user, "import time\ntime.sleep(30)\n")
    srv.services.accounts.set_limits(user.name, max_concurrent_runs=1)
    codes: list[int] = []

    def start_one() -> None:
        with srv.client(user) as client:
            codes.append(client.post(f"/api/v2/workers/{worker}/runs", json={}).status_code)

    threads = [threading.Thread(target=start_one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [429] * 11, codes
    with srv.client(user) as api:
        assert api.get("/api/v2/worker-runs").json()["data"]["count"] == 1
        api.post("/api/v2/worker-runs/last/abort")


def test_limits_that_no_column_holds_are_refused(server: Server) -> None:
    user = server.user()
    accounts = server.services.accounts
    for limits in ({"max_concurrent_runs": 2**31}, {"price_per_cpu_second": "1000000001"}):
        with pytest.raises(InvalidInput):
            accounts.set_limits(user.name, **limits)  # type: ignore[arg-type]
    assert accounts.set_limits(user.name, max_concurrent_runs=2**31 - 1).max_concurrent_runs
