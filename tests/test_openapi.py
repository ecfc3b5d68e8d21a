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
