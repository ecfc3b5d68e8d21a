"""No log line ever holds an API key or a link signature, however the query spells it."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from runyard.api.logs import redact_query
from tests.conftest import Server, User


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("token=ry_secret", "token=[redacted]"),
        ("offset=1&TOKEN=ry_secret&limit=2", "offset=1&TOKEN=[redacted]&limit=2"),
        ("%74oken=ry_secret", "%74oken=[redacted]"),
        ("tok%65n=ry_secret&x=1", "tok%65n=[redacted]&x=1"),
        ("expires=1&signature=abc", "expires=1&signature=[redacted]"),
        ("limit=5", "limit=5"),
    ],
)
def test_redact_query(query: str, expected: str) -> None:
    assert redact_query(query) == expected


def test_access_log_has_request_id_and_no_key(
    server: Server, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    run = server.run(user, [{"a": 1}])
    with caplog.at_level(logging.INFO, logger="runyard.access"):
        for spelling in ("token", "%74oken", "tok%65n"):
            resp = httpx.get(f"{server.url}/api/v2/worker-runs/{run}/result?{spelling}={user.key}")
            assert resp.status_code == 200  # the key was accepted...
        # The line is written once the reply has gone out, so it may trail the reply a little.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            lines = [r.getMessage() for r in caplog.records if r.name == "runyard.access"]
            if len(lines) == 3:
                break
            time.sleep(0.01)
    assert len(lines) == 3
    for line in lines:
        assert user.key not in line  # ...and never written down
        assert "=[redacted]" in line and " 200 " in line and "req-" in line
