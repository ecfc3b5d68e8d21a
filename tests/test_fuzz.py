"""Schemathesis against /openapi.json: every operation, authenticated, on real objects.

Each operation is fuzzed with the examples, coverage and fuzzing phases (valid and invalid
requests) and, in ``test_stateful``, along the OpenAPI links (start a run, then read, export,
abort and rerun it; create a task, then change, run and delete it). No reply may be a 5xx or
differ from what /openapi.json documents for it (status, content type, body, headers), invalid
requests must be refused, a key must be needed, and what one user reaches by id another may
not (``tenant_isolation``). ``make fuzz`` sets ``RUNYARD_FUZZ_EXAMPLES`` (300) and adds the
PostgreSQL pass.

The schema is loaded from the app when the tests are collected: Schemathesis's fixture-based
loader (``schemathesis.pytest.from_fixture``) fails on pytest 9 (``'Function' object has no
attribute '_nodeid'``), so the real objects are named by placeholders until a server exists.

Checks left off, and why: ``positive_data_acceptance`` (a request valid by the schema may still
be refused by what the schema cannot say: a worker that does not exist, an input that fails the
worker's own ``input_schema.json``), ``unsupported_method`` and ``allow_header_conformance``
(an undocumented method answers 404 / 11004 like an unknown route, spec §1, never 405),
``object_level_authorization`` (needs identities Schemathesis signs up itself;
``tenant_isolation`` replays requests as a second user instead), ``max_response_time`` (speed
belongs in the benchmarks). ``ensure_resource_availability`` runs as
``created_resources_are_found``, which lets a 404 / 50003 (no such worker version) through.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis.stateful import get_state_machine_test
from schemathesis import Case, CheckContext, Response
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput
from schemathesis.specs.openapi.checks import ensure_resource_availability

from runyard.api import create_app
from runyard.services import Services
from runyard.services.packages import load_package
from runyard.settings import Settings
from tests.conftest import Databases, Server, start, wait_for

#: Examples per operation in the fuzzing phase (the examples and coverage phases add their
#: own); ``make fuzz`` sets 300, and then fuzzes PostgreSQL too.
EXAMPLES = int(os.environ.get("RUNYARD_FUZZ_EXAMPLES") or 20)
DEEP = "RUNYARD_FUZZ_EXAMPLES" in os.environ
pytestmark = [pytest.mark.both_databases] if DEEP else []
#: Stateful scenarios, and steps in each.
SCENARIOS = max(EXAMPLES // 2, 5)
STEPS = 6
SAMPLE_DATA = Path(__file__).parent.parent / "examples" / "workers" / "sample-data"

#: Pushes at most three rows and a log line, and is done.
WORKER = """
from runyard import sdk
count = sdk.input().get("count", 2)
sdk.log(f"fuzzed with {count}")
sdk.push_many([{"n": n, "text": "row"} for n in range(min(count, 3))])
"""
#: ``count`` as sample-data has it, so that the documented examples start runs of both.
PROPERTIES = [
    {"name": "count", "title": "Count", "type": "integer", "editor": "number", "default": 2},
    {"name": "text", "title": "Text", "type": "string", "editor": "input"},
]

#: Path and query parameters are drawn from these (70 % of the time; otherwise anything the
#: schema allows) so that requests reach real objects. The names stand for objects the server
#: holds, made in ``seeded``: the schema is loaded when the tests are collected, before any
#: server exists.
PLACEHOLDERS = {
    "runId": ["seeded-run", "seeded-imported-run", "last"],
    "workerId": ["seeded-worker", "seeded-worker-path", "sample-data"],
    "workerTaskId": ["seeded-task"],
    "name": ["seeded-name"],
    "filename": ["seeded-filename"],
    "expires": ["seeded-expires"],
    "signature": ["seeded-signature"],
}
PATH_PARAMETERS = ("runId", "workerId", "workerTaskId", "name", "filename")
QUERY_PARAMETERS = ("expires", "signature")


def _document() -> dict[str, Any]:
    """/openapi.json of the real app (it does not depend on the data)."""
    with tempfile.TemporaryDirectory() as tmp:
        svc = Services(Settings(data_dir=Path(tmp)))
        try:
            return create_app(svc).openapi()
        finally:
            svc.close()


def _config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": 1,
            "suppress-health-check": ["all"],
            "generation": {
                "max-examples": EXAMPLES,
                "database": "none",
                # The key is sent by the test; generated ones would only be refused with 401.
                "with-security-parameters": False,
            },
            "phases": {"stateful": {"max-steps": STEPS}},
            "checks": {
                "enabled": False,
                **{
                    name: {"enabled": True}
                    for name in (
                        "not_a_server_error",
                        "status_code_conformance",
                        "content_type_conformance",
                        "response_schema_conformance",
                        "response_headers_conformance",
                        "negative_data_rejection",
                        "missing_required_header",
                        "ignored_auth",
                        "use_after_free",
                    )
                },
            },
            "dictionaries": {name: {"values": values} for name, values in PLACEHOLDERS.items()},
            "parameters": {
                **{
                    f"{where}.{name}": {"dictionary": name, "probability": 0.7}
                    for where, names in (("path", PATH_PARAMETERS), ("query", QUERY_PARAMETERS))
                    for name in names
                },
                "body.worker_id": {"dictionary": "workerId", "probability": 0.7},
            },
        }
    )


schema = schemathesis.openapi.from_dict(_document(), config=_config())


@dataclass
class Seeded:
    """The server under test, its callers, and the real objects the placeholders stand for."""

    server: Server
    api: httpx.Client
    worker: str
    other_key: str
    values: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": str(self.api.headers["Authorization"])}

    def prepare(self, case: Case) -> None:
        """Put real objects in place of the placeholders; a delete or an abort of the seeded
        object gets one of its own, so that the next examples still find theirs."""
        path = case.path_parameters or {}
        if case.method == "DELETE" and path.get("workerTaskId") == "seeded-task":
            path["workerTaskId"] = self._new_task()
        if case.operation.path.endswith("/abort") and path.get("runId") == "seeded-run":
            path["runId"] = self._new_run() or "seeded-run"
        body = case.body if isinstance(case.body, dict) else {}
        for container in (path, case.query or {}, body):
            for name, value in container.items():
                if isinstance(value, str) and value in self.values:
                    container[name] = self.values[value]

    def _new_task(self) -> str:
        body = {"worker_id": self.worker, "title": "to delete", "input": {}}
        slug: str = self.api.post("/api/v2/worker-tasks", json=body).json()["data"]["slug"]
        return slug

    def _new_run(self) -> str | None:
        # Refused (429 / 30003) while two runs are active: the caller then aborts a finished one.
        reply = self.api.post(f"/api/v2/workers/{self.worker}/runs", json={})
        return str(reply.json()["data"]["run_slug"]) if reply.status_code == 200 else None

    def tenant_isolation(self, ctx: CheckContext, response: Response, case: Case) -> bool | None:
        """What this caller reached by id, another user may not: 404 / 11004 (spec §1)."""
        path = case.path_parameters or {}
        if not 200 <= response.status_code < 300 or not path:
            return None
        if case.operation.path.startswith("/api/v2/files/") or path.get("workerId") in (
            "sample-data",
            f"{self.values['seeded-publisher']}~sample-data",
        ):
            return None  # a signed link, or a published worker: anyone may
        other = case.call(
            base_url=self.server.url, headers={"Authorization": f"Bearer {self.other_key}"}
        )
        assert (other.status_code, other.json().get("code")) == (404, 11004), (
            f"another user got {other.status_code} from {case.method} {case.formatted_path}: "
            f"{other.text[:300]}"
        )
        return None


def created_resources_are_found(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Schemathesis's ``ensure_resource_availability`` (a task just created is not 404), except
    for 404 / 50003: a task's input naming a worker version that does not exist (spec §1)."""
    if response.status_code == 404 and response.json().get("code") == 50003:
        return None
    return ensure_resource_availability(ctx, response, case)


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory,
    venvs_dir: Path,
    backend: str,
    databases: Databases,
) -> Iterator[Seeded]:
    settings: dict[str, Any] = {
        "data_dir": tmp_path_factory.mktemp("fuzz"),
        "venvs_dir": venvs_dir,
        "database_url": databases.url(backend),
        # Fuzzed synchronous starts (``is_async: false``) wait one second, not five minutes.
        "sync_wait_seconds": 1,
        "run_timeout_seconds": 30,
    }
    srv = Server(Settings(**settings))
    user, other, publisher = srv.user(), srv.user(), srv.user()
    # Fuzzed starts are refused (429 / 30003) past two active runs: runs never pile up.
    srv.services.accounts.set_limits(user.name, max_concurrent_runs=2)
    srv.services.accounts.set_limits(other.name, max_concurrent_runs=1)
    srv.services.workers.register(publisher.id, load_package(SAMPLE_DATA))
    worker = srv.worker(user, WORKER, properties=PROPERTIES, slug="fuzz-worker")
    api = srv.client(user)
    run = start(api, worker)
    assert wait_for(api, run)["status"] == "succeeded"
    imported = srv.run(user, [{"i": i, "title": f"row {i}"} for i in range(250)], worker=worker)
    task = api.post(
        "/api/v2/worker-tasks", json={"worker_id": worker, "title": "fuzzed", "input": {}}
    ).json()["data"]["slug"]
    link = api.get(f"/api/v2/worker-runs/{run}/result/export").json()["data"]["download_url"]
    url = urlsplit(link)
    name, filename = url.path.rsplit("/", 2)[-2:]
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    yield Seeded(
        srv,
        api,
        worker,
        other.key,
        {
            "seeded-run": run,
            "seeded-imported-run": imported,
            "seeded-worker": worker,
            "seeded-worker-path": f"{user.name}~{worker}",
            "seeded-publisher": publisher.name,
            "seeded-task": task,
            "seeded-name": name,
            "seeded-filename": filename,
            "seeded-expires": query["expires"],
            "seeded-signature": query["signature"],
        },
    )
    api.close()
    srv.stop()


@schema.parametrize()
def test_api(case: Case, seeded: Seeded) -> None:
    seeded.prepare(case)
    case.call_and_validate(
        base_url=seeded.server.url,
        headers=seeded.headers,
        additional_checks=[seeded.tenant_isolation],
    )


def test_stateful(seeded: Seeded) -> None:
    """Scenarios along the documented links: each step feeds real ids to the next."""
    failures: list[str] = []
    scenarios = 0

    class Links(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            nonlocal scenarios
            scenarios += 1

        def before_call(self, case: Case) -> None:
            seeded.prepare(case)

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"base_url": seeded.server.url, "headers": seeded.headers}

        def validate_response(
            self, response: Response, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            checks = [seeded.tenant_isolation, created_resources_are_found]
            super().validate_response(response, case, checks, **kwargs)

        def step(self, input: StepInput) -> StepOutput | None:
            # Collected, not raised: Hypothesis would replay the scenario to shrink it, against
            # a server whose state has moved on (runs finished, tasks deleted).
            try:
                return super().step(input)
            except (Exception, FailureGroup):
                failures.append(traceback.format_exc())
                return None

    # Which links are open depends on what the server answered (a start refused with 429
    # opens none), so Hypothesis may find a scenario it generated before taking another turn
    # and give up with Flaky: the run then goes on from the next seed, as Schemathesis's own
    # runner does.
    for attempt in range(SCENARIOS):
        if scenarios >= SCENARIOS:
            break
        settings = hypothesis.settings(
            max_examples=SCENARIOS - scenarios,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        test = get_state_machine_test(
            Links, settings=settings, _flaky_state={"selecting_rule": False}
        )
        with contextlib.suppress(hypothesis.errors.Flaky):
            hypothesis.seed(attempt)(test)()
    assert not failures, "\n\n".join(failures)
    assert scenarios >= SCENARIOS
