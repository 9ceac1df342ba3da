"""Hostile input on every operation of /schema/openapi.json: a bounded, derandomised hypothesis run.

Where tests/test_trust_schemathesis.py sends what the spec allows, this sends what a careless or
hostile client does: one parameter (query or path) replaced by a hostile value (huge and negative
numbers, NaN, exponents, empty, long, RTL, emoji, NUL, malformed percent-encoding), given twice,
or a JSON body of any shape. Every answer must keep the error contract: a status the operation
documents, never a 5xx but a documented 503, a JSON body {status_code, detail, field?} with the
field named in the detail, and a 400 naming the parameter that was changed (or a body field).
The world: tests/conftest.py's private copy of the demo fixture, with the real text model.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from app.api import create_app
from app.settings import Settings
from tests.helpers.api import bearer

EXAMPLES = 150  # per test: 0.3-1.3 s here (the file: about 5 s, 4 of them the demo world's setup)
HOSTILE = [
    "", "0", "-1", "-0", "00", str(2**63), str(2**64), "9" * 400, "1e2", "1e308", "1e309", "NaN", "Infinity",
    "-Infinity", "0x10", "1_000", " 5", "5 ", "\u0663", "\uff15", "true", "null", "[]", "{}", "x" * 5000,
    "مرحبا", "\u202eevil", "🎬🍿", "\x00", "a\x00b", "%", "1,2,3", ",,,", "1," * 1001, "-5.5", "0.5",
]  # fmt: skip
RAW = ["%ED%A0%80", "%FF", "%C0%80", "%zz", "%", "%00", "%2F", "%E9", "1%00"]  # sent as is: not UTF-8, or odd
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure here is reproducible
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.fixture(scope="module")
def api(settings: Settings, text_encoder: Any) -> Iterator[tuple[TestClient[Litestar], dict[str, Any]]]:
    with TestClient(create_app(settings, text_encoder=text_encoder)) as client:
        client.headers.update(bearer(settings, admin=True))
        yield client, client.get("/schema/openapi.json").json()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "delete"}
    ]


def example(param: dict[str, Any]) -> str:
    """A valid value: the documented example (user 15, movie 1, `letterboxd`...)."""
    return urllib.parse.quote(str(param["schema"]["examples"][0]), safe="")


values = st.one_of(
    st.sampled_from(HOSTILE).map(lambda v: urllib.parse.quote(v, safe="")),
    st.sampled_from(RAW),
    st.text(max_size=40).map(lambda v: urllib.parse.quote(v, safe="")),
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(repr),
)


@given(data=st.data())
@SETTINGS
def test_a_hostile_parameter_is_a_400_naming_it(api: tuple[TestClient[Litestar], dict[str, Any]], data: Any) -> None:
    client, spec = api
    method, path, op = data.draw(st.sampled_from([o for o in operations(spec) if o[2].get("parameters")]))
    param = data.draw(st.sampled_from(op["parameters"]))
    value = data.draw(values)
    url = path
    query = [(p["name"], example(p)) for p in op["parameters"] if p["in"] == "query" and p["required"]]
    for p in op["parameters"]:
        if p["in"] == "path":
            url = url.replace("{" + p["name"] + "}", (value or "%20") if p is param else example(p))
    if param["in"] == "query":
        query = [(k, v) for k, v in query if k != param["name"]] + [(param["name"], value)]
        if data.draw(st.booleans()):
            query.append((param["name"], value))  # given twice
    url += "?" + "&".join(f"{k}={v}" for k, v in query) if query else ""
    body = _valid_body(path) if method == "POST" else None
    resp = client.request(method, url, content=body, headers={"Content-Type": "application/json"})
    error = assert_contract(resp, op, (method, url))
    if resp.status_code == 400:
        assert error["field"] == param["name"], (method, url, error)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@given(data=st.data())
@SETTINGS
def test_a_hostile_body_is_a_400_naming_the_field(api: tuple[TestClient[Litestar], dict[str, Any]], data: Any) -> None:
    client, spec = api
    bodies = [o for o in operations(spec) if "application/json" in o[2].get("requestBody", {}).get("content", {})]
    method, path, op = data.draw(st.sampled_from(bodies))
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    fields = list(spec["components"]["schemas"][ref]["properties"])
    keys = st.sampled_from(fields) | st.text(max_size=8)
    body = data.draw(st.dictionaries(keys, json_values, max_size=4) | json_values)
    raw = json.dumps(body)  # NaN and Infinity, which json.dumps writes, are not JSON: a 400 naming `body`
    resp = client.request(
        method, path.replace("{user_id}", "15"), content=raw, headers={"Content-Type": "application/json"}
    )
    error = assert_contract(resp, op, (method, path, raw))
    if resp.status_code == 400:
        named = set(body) if isinstance(body, dict) else set()
        assert error["field"] in named | set(fields) | {"body"}, (path, raw, error)


def assert_contract(resp: Any, op: dict[str, Any], where: Any) -> dict[str, Any]:
    """A documented status (503 only where documented: no 500), and for an error the JSON ErrorBody
    with its field named in the detail and no traceback; the error body, or {}."""
    event(f"status {resp.status_code}")  # pytest --hypothesis-show-statistics: what the cases reached
    assert str(resp.status_code) in op["responses"], (where, resp.status_code, resp.text[:300])
    if resp.status_code < 400:
        return {}
    error = resp.json()
    assert set(error) <= {"status_code", "detail", "field"} and error["status_code"] == resp.status_code, where
    assert isinstance(error["detail"], str) and error["detail"], (where, error)
    assert "Traceback" not in resp.text and 'File "' not in resp.text, where
    if error.get("field"):
        assert error["field"] in error["detail"], (where, error)
    return error  # type: ignore[no-any-return]


def _valid_body(path: str) -> bytes:
    if path == "/recommendations":
        return b'{"liked": [1], "limit": 3}'
    if path.endswith("/import"):
        return b"Date,Name,Year,Letterboxd URI,Rating\n2024-01-05,Toy Story,1995,x,4.5\n"
    return b'{"movie_id": 1, "rating": 4.5}' if path.endswith("/ratings") else b'{"movie_id": 2}'
