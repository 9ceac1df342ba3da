"""The OpenAPI document a client generator reads: walked whole, checked against the app's own routes.

No index is needed: the spec and parameter validation answer before any handler runs."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from app.api import create_app
from app.api.openapi import ClosedStructSchemaPlugin, closed_struct_schemas
from app.api.security import admin_only, owner_or_admin
from app.api.strict_input import rules_of
from tests.helpers.api import bearer
from tests.helpers.worlds import make_settings

NUMERIC = {"integer", "number"}
PUBLIC = {"/health", "/metrics"}  # no token: probes and Prometheus scrapers
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, text_encoder: Any) -> Litestar:
    return create_app(make_settings(tmp_path_factory.mktemp("openapi") / "data"), text_encoder=text_encoder)


@pytest.fixture(scope="module")
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client: TestClient[Litestar]) -> dict[str, Any]:
    resp = client.get("/schema/openapi.json")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, op


def guarded(app: Litestar) -> set[tuple[str, str]]:
    """(path, method) of every route a guard that forbids (owner_or_admin, admin_only) protects, from the app."""
    out = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if {owner_or_admin, admin_only} & {getattr(g, "func", g) for g in handler.resolve_guards()}:  # wrapped
                for method in handler.http_methods:
                    out.add((_openapi_path(route.path), method.lower()))
    return out


def _openapi_path(path: str) -> str:
    """/users/{user_id:str}/ratings -> /users/{user_id}/ratings"""
    return "/".join(p.split(":")[0] + "}" if p.startswith("{") else p for p in path.split("/"))


def test_every_operation_is_described(spec: dict[str, Any]) -> None:
    ids = []
    for path, method, op in operations(spec):
        assert op.get("summary") and op.get("description"), (method, path)
        ids.append(op.get("operationId"))
    assert all(ids) and len(set(ids)) == len(ids)


def test_each_route_lists_only_the_errors_it_can_return(app: Litestar, spec: dict[str, Any]) -> None:
    protected = guarded(app)
    assert ("/users/{user_id}/hidden", "get") in protected and ("/movies/recommendations", "get") in protected
    for path, method, op in operations(spec):
        codes = {int(c) for c in op["responses"]}
        where = (method, path)
        assert 501 not in codes, where  # nothing answers "not implemented"
        assert (403 in codes) == ((path, method) in protected), where  # only the guards forbid
        ids_in_path = "{" in path
        # Any operation: a query parameter it does not take (400), a head over the server's limit (431);
        # one with a body: a body over the limit (413).
        assert {400, 431} <= codes and (413 in codes) == ("requestBody" in op), where
        assert path in PUBLIC or 503 in codes, where  # user tokens, before the revocations are read
        if "{movie_id}" in path:
            assert 404 in codes, where  # no such movie (an unknown user is a new one: never 404)
        assert (409 in codes) == (op["operationId"] == "importRatings"), where  # only an import conflicts
        user_param = any(p["name"] == "user_id" for p in op.get("parameters", []))
        if not ids_in_path and not user_param:
            assert 404 not in codes, where  # nothing named, nothing to miss
        assert (401 in codes) == (path not in PUBLIC), where
        for code in codes - {200, 201, 204}:
            if path not in PUBLIC:
                schema = op["responses"][str(code)]["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("/ErrorBody"), where
    assert {int(c) for c in spec["paths"]["/genres"]["get"]["responses"]} == {200, 400, 401, 431, 503}
    assert "403" not in spec["paths"]["/movies/search"]["get"]["responses"]
    for listed in ("/users/{user_id}/ratings", "/users/{user_id}/hidden"):  # an unknown user has an empty list
        assert "404" not in spec["paths"][listed]["get"]["responses"], listed
    health = spec["paths"]["/health"]["get"]["responses"]
    assert set(health) == {"200", "400", "431", "503"}
    assert health["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/HealthOut")


def test_every_parameter_has_a_description_bounds_and_an_example(spec: dict[str, Any]) -> None:
    seen = set()
    for path, method, op in operations(spec):
        for p in op.get("parameters", []):
            where = (method, path, p["name"])
            assert p.get("description"), where
            if p["in"] != "query":
                continue  # path ids: typed and bounded by their own work (trust-api)
            seen.add(p["name"])
            schema = p["schema"]
            assert schema.get("examples"), where
            types = {schema.get("type")} | {s.get("type") for s in schema.get("oneOf", [])}
            if types & NUMERIC:
                assert "minimum" in schema and "maximum" in schema, where
                assert schema["minimum"] <= schema["examples"][0] <= schema["maximum"], where
    assert {"limit", "offset", "exclude", "window_days", "min_votes", "popularity", "diversity"} <= seen
    recommend = {p["name"]: p["schema"] for p in spec["paths"]["/movies/recommendations"]["get"]["parameters"]}
    for name in ("popularity", "diversity"):
        assert (recommend[name]["minimum"], recommend[name]["maximum"]) == (0, 1), name


def test_the_schema_accepts_what_the_api_accepts(spec: dict[str, Any]) -> None:
    """What a client generator or a fuzzer reads: the bounds and shapes the API itself enforces.
    Litestar wrote the id bound 10^18 - 1 as the float 1e+18 (so `movie_id: 10^18` was valid to the
    schema and a 400), `allowEmptyValue: false` on parameters an empty value leaves unset, no
    `additionalProperties: false` on bodies that refuse unknown fields, no body for the import, and
    `space` as any string."""
    floats = [(where, v) for where, v in _bounds(spec, "") if isinstance(v, float) and v >= 2**53]
    assert not floats, floats
    for path, method, op in operations(spec):
        for p in op.get("parameters", []):
            if p["in"] == "query":
                assert p["allowEmptyValue"] is (not p["required"]), (method, path, p["name"])
    bodies = {
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        for _, _, op in operations(spec)
        if "application/json" in op.get("requestBody", {}).get("content", {})
    }
    assert bodies == {"GuestIn", "HiddenIn", "RatingIn"}
    for name in bodies:
        assert spec["components"]["schemas"][name]["additionalProperties"] is False, name
    liked = spec["components"]["schemas"]["GuestIn"]["properties"]["liked"]["items"]
    assert (liked["minimum"], liked["maximum"]) == (1, 10**18 - 1)
    upload = spec["paths"]["/users/{user_id}/ratings/import"]["post"]["requestBody"]
    assert upload["required"] and {"text/csv", "application/zip", "multipart/form-data"} <= set(upload["content"])
    space = spec["paths"]["/dashboard/api/map/{space}"]["get"]["parameters"][0]["schema"]
    assert space["enum"] == ["combined", "collab"]


def _bounds(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every (JSON path, value) of a `minimum` or `maximum` in the document."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        if key in {"minimum", "maximum"}:
            yield f"{where}/{key}", value
        yield from _bounds(value, f"{where}/{key}")


def test_a_litestar_that_moved_its_struct_plugin_costs_the_closed_schemas_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Litestar's Struct schema plugin is private to it: where a release moved it (another module,
    another name) there is no plugin and one warning naming it, never an app that cannot start."""
    with caplog.at_level(logging.WARNING, logger="app.api.openapi"):
        for moved in ("litestar._openapi.moved:StructSchemaPlugin", "litestar.plugins:StructSchemaPlugin"):
            caplog.clear()
            assert closed_struct_schemas(moved) == []
            assert [r.levelno for r in caplog.records] == [logging.WARNING] and moved in caplog.text
    assert [type(p) for p in closed_struct_schemas()] == [ClosedStructSchemaPlugin]  # this Litestar's


def test_every_response_field_has_a_description_and_an_example(spec: dict[str, Any]) -> None:
    for name, component in spec["components"]["schemas"].items():
        for field, schema in component.get("properties", {}).items():
            assert schema.get("description"), (name, field)
            if schema.get("type") != "array" or schema.get("items", {}).get("type"):  # lists of objects: see the object
                assert "examples" in schema, (name, field)
            types = {schema.get("type")} | {s.get("type") for s in schema.get("oneOf", [])}
            if field in {"limit", "offset", "total", "votes", "rating", "year", "coverage"} and types & NUMERIC:
                assert "minimum" in schema, (name, field)


def test_scores_and_paths_are_documented_per_path(spec: dict[str, Any]) -> None:
    rec = spec["components"]["schemas"]["RecommendationOut"]["properties"]
    score = rec["score"]["description"]
    for path in ("popular", "content_cold_start", "collab", "collab_popular", "hybrid", "popularity", "diversity"):
        assert f"`{path}`" in score, path
    assert rec["reason"]["description"]
    path_doc = spec["components"]["schemas"]["RecommendationsOut"]["properties"]["path"]
    assert set(path_doc["enum"]) == {"popular", "content_cold_start", "content", "collab_popular", "collab", "hybrid"}
    assert "score" in path_doc["description"]


def test_enum_errors_list_the_allowed_values(
    client: TestClient[Litestar], spec: dict[str, Any], tmp_path: Path
) -> None:
    headers = bearer(client.app.state.services.settings, admin=True)
    cases = [
        ("get", "/movies/{movie_id}/similar", "/movies/1/similar", "vector", {}),
        ("get", "/movies/recommendations", "/movies/recommendations", "strategy", {"user_id": 1}),
    ]
    for method, spec_path, url, name, params in cases:
        param = next(p for p in spec["paths"][spec_path][method]["parameters"] if p["name"] == name)
        allowed = param["schema"]["enum"]
        resp = client.get(url, params={**params, name: "bogus"}, headers=headers)
        assert resp.status_code == 400, resp.text
        body = resp.json()
        assert body["field"] == name and "'bogus'" in body["detail"]
        assert body["detail"].endswith("allowed: " + ", ".join(allowed)), body
    resp = client.post("/recommendations", json={"strategy": "bogus"}, headers=headers)
    assert resp.status_code == 400 and resp.json()["detail"].endswith("allowed: content, collab, hybrid"), resp.text
    # A type error is not an enum error: no list of values.
    resp = client.get("/movies/recommendations", params={"user_id": 1, "limit": "x"}, headers=headers)
    assert resp.status_code == 400 and "allowed" not in resp.json()["detail"]


def test_a_missing_required_parameter_is_named(client: TestClient[Litestar]) -> None:
    headers = bearer(client.app.state.services.settings, admin=True)
    resp = client.get("/movies/search", headers=headers)
    assert resp.status_code == 400 and resp.json()["field"] == "q" and "q" in resp.json()["detail"], resp.text
    resp = client.post("/users/15/ratings/import", content=b"Date,Name\n", headers=headers)
    assert resp.status_code == 400 and resp.json()["field"] == "format", resp.text


def test_an_import_before_any_catalogue_answers_a_documented_409(
    client: TestClient[Litestar], spec: dict[str, Any]
) -> None:
    """This app has no catalogue yet: a history import has nothing to match its titles against."""
    headers = bearer(client.app.state.services.settings, admin=True)
    export = b"Date,Name,Year,Letterboxd URI,Rating\n2021-03-04,Toy Story,1995,,4\n"
    resp = client.post("/users/15/ratings/import", params={"format": "letterboxd"}, content=export, headers=headers)
    assert resp.status_code == 409 and "ingest one first" in resp.json()["detail"], resp.text
    documented = spec["paths"]["/users/{user_id}/ratings/import"]["post"]["responses"]
    assert documented["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_the_query_parameters_accepted_are_exactly_those_documented(app: Litestar, spec: dict[str, Any]) -> None:
    """strict_input refuses any other key: a documented one refused would break a client, an
    undocumented one accepted would be a parameter no generated client knows."""
    accepted = {handler.operation_id: rules.query for handler, rules in rules_of(app).items()}
    for path, method, op in operations(spec):
        documented = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert set(accepted[op["operationId"]]) == documented, (method, path)


def test_every_operation_names_an_unknown_query_parameter(client: TestClient[Litestar], spec: dict[str, Any]) -> None:
    """Before anything is read or written (no index here): the route's required parameters are given
    their documented examples, plus one it does not take."""
    headers = bearer(client.app.state.services.settings, admin=True)
    for path, method, op in operations(spec):
        params = op.get("parameters", [])
        values = {p["name"]: p["schema"]["examples"][0] for p in params if p["required"]}
        url = path.format(**{k: v for k, v in values.items() if "{" + k + "}" in path})
        query = {k: v for k, v in values.items() if "{" + k + "}" not in path} | {"no_such_param": "1"}
        resp = client.request(method.upper(), url, params=query, headers=headers)
        assert resp.status_code == 400, (method, path, resp.text)
        body = resp.json()
        assert body["field"] == "no_such_param" and "'no_such_param'" in body["detail"], (method, path, body)
        takes = sorted(p["name"] for p in params if p["in"] == "query")
        assert body["detail"].endswith(", ".join(takes) if takes else "takes none"), (method, path, body)


def test_the_docs_use_only_documented_query_parameters(spec: dict[str, Any]) -> None:
    """Every URL with a query in the README and the deployment guide: its keys are the route's."""
    by_path: dict[str, set[str]] = {path: set() for path in spec["paths"]}
    for path, _, op in operations(spec):
        by_path[path] |= {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    # Most literal first: /movies/recommendations before /movies/{movie_id}.
    templates = sorted(by_path, key=lambda path: (path.count("{"), -len(path)))
    checked = 0
    for doc in (ROOT / "README.md", ROOT / "docs" / "deploy.md"):
        text = doc.read_text()
        urls = re.findall(r"localhost:8000(/[^\s\"'`]*)", text) + re.findall(r"`[A-Z]+ (/[^`\s]*)`", text)
        for url in urls:
            path, _, query = url.partition("?")
            if not query or query.endswith("..."):
                continue
            template = next(
                (t for t in templates if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)), path)), None
            )
            assert template is not None, (doc.name, url)
            keys = {pair.partition("=")[0] for pair in query.split("&")}
            assert keys <= by_path[template], (doc.name, url, keys - by_path[template])
            checked += 1
    assert checked >= 20, checked
