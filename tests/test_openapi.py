"""/openapi.json documents every route with the shape it really answers."""

from __future__ import annotations

import httpx

from tests.conftest import Server


def test_every_route_is_documented_with_its_envelope(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    paths = spec["paths"]
    assert set(paths) >= {
        "/api/v2/worker-runs/{runId}/result",
        "/api/v2/worker-runs/{runId}/result/export",
        "/api/v2/worker-runs/{runId}",
        "/api/v2/files/{name}/{filename}",
    }
    schemas = spec["components"]["schemas"]

    def resolve(ref: dict) -> dict:
        return schemas[ref["$ref"].rsplit("/", 1)[1]]

    result = paths["/api/v2/worker-runs/{runId}/result"]["get"]
    envelope = resolve(result["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(envelope["properties"]) == {"code", "message", "data", "request_id"}
    page = resolve(envelope["properties"]["data"])
    assert set(page["properties"]) == {"count", "headers", "list", "page_index", "page_size"}
    for status in ("401", "404", "422", "500"):
        error = resolve(result["responses"][status]["content"]["application/json"]["schema"])
        assert set(error["properties"]) >= {"code", "message", "data", "details", "request_id"}
    params = {p["name"]: p for p in result["parameters"]}
    assert params["offset"]["schema"]["minimum"] == 0
    assert params["limit"]["schema"]["minimum"] == 1
    assert params["limit"]["schema"]["default"] == 20

    export = paths["/api/v2/worker-runs/{runId}/result/export"]["get"]
    link = resolve(
        resolve(export["responses"]["200"]["content"]["application/json"]["schema"])["properties"][
            "data"
        ]
    )
    assert set(link["properties"]) == {"download_url"}
    assert {p["name"] for p in export["parameters"]} >= {"format", "filter_keys"}
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Preferred: `Authorization: Bearer <key>`",
    }
    assert schemes["apiKeyHeader"]["name"] == "api-key"
    assert schemes["tokenQuery"] == {"type": "apiKey", "in": "query", "name": "token"}
    assert {next(iter(s)) for s in result["security"]} == set(schemes)
    assert "security" not in paths["/api/v2/files/{name}/{filename}"]["get"]


def test_every_operation_documents_the_error_envelope_it_answers(server: Server) -> None:
    """No FastAPI default survives: each error status is the envelope, success is JSON."""
    spec = httpx.get(f"{server.url}/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    public = {"/api/v2/store", "/api/v2/proxy/region", "/api/v2/files/{name}/{filename}"}
    operations = [
        (path, method, operation)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) == 31
    for path, method, operation in operations:
        responses = operation["responses"]
        expected = {"404", "408", "413", "422", "429", "431", "500"}
        expected |= set() if path in public else {"401"}
        assert expected <= set(responses), (method, path)
        for status, response in responses.items():
            assert "X-Request-Id" in response.get("headers", {}) or status in ("200", "206")
            if status.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorEnvelope", (method, path, status)
        if path != "/api/v2/files/{name}/{filename}":
            ok = responses["200"]["content"]["application/json"]["schema"]
            assert "$ref" in ok and "type" not in ok, (method, path)  # JSON, not a string
        assert "Retry-After" in responses["429"]["headers"]
    starts = spec["paths"]["/api/v2/workers/{workerId}/runs"]["post"]["responses"]
    assert {"400", "402"} <= set(starts)
    assert starts["200"]["links"]["GetRun"] == {
        "operationRef": "#/paths/~1api~1v2~1worker-runs~1{runId}/get",
        "parameters": {"runId": "$response.body#/data/run_slug"},
        "description": "The new run's record",
    }
    created = spec["paths"]["/api/v2/worker-tasks"]["post"]["responses"]["200"]
    assert set(created["links"]) == {
        "GetTask",
        "UpdateTask",
        "DeleteTask",
        "GetTaskInput",
        "UpdateTaskInput",
        "RunTask",
    }
    abort = spec["paths"]["/api/v2/worker-runs/{runId}/abort"]["post"]["responses"]
    assert "409" in abort


def test_bodies_take_the_documented_types_only(server: Server, api: httpx.Client) -> None:
    """A boolean or a numeric string where the schema says integer is refused, not coerced."""
    for body in ({"schedule_day": False}, {"schedule_enabled": "1"}, {"title": 5}):
        task = {"worker_id": "nope", "title": "t", "input": {}, **body}
        reply = api.post("/api/v2/worker-tasks", json=task)
        assert reply.status_code == 422 and reply.json()["code"] == 11000, reply.text
    for body in ({"is_async": 0}, {"limit": "5"}, {"offset": 1.5}):
        reply = api.post("/api/v2/workers/nope/runs", json=body)
        assert reply.status_code == 422 and reply.json()["code"] == 11000, reply.text
