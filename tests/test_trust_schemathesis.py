"""Issue 10, acceptance: schemathesis fuzzes every operation in /schema/openapi.json, bounded, and
no case may answer 5xx, or answer what the spec does not document (CHECKS).

The API runs under uvicorn (with `movierec serve`'s limits) on a copy of the demo index, with an
admin token so cases reach the handlers rather than stopping at 401. Ids are typed as bounded
integers in the spec, so the generated ids are valid ones and exercise the handlers.
MOVIEREC_FUZZ_EXAMPLES sets the cases per operation (default 40: about a minute here).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api import create_app
from app.auth import issue_token
from app.settings import Settings
from tests.helpers.server import serve
from tests.helpers.worlds import copy_settings

EXAMPLES = int(os.environ.get("MOVIEREC_FUZZ_EXAMPLES", "40"))
# Besides no 5xx: each answer's status is one the operation documents, its Content-Type the documented
# one, and its body matches the documented schema (the error body included).
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_api(demo_settings: Settings, tmp_path_factory: pytest.TempPathFactory, text_encoder: Any) -> Iterator[Any]:
    world = copy_settings(demo_settings, tmp_path_factory.mktemp("fuzz") / "data")
    with serve(create_app(world, text_encoder=text_encoder), world) as base_url:
        yield world, base_url


def test_no_case_answers_5xx(fuzzed_api: Any) -> None:
    # One test driving hypothesis per operation: schemathesis' pytest plugin (from_fixture) does not
    # run on pytest 9.
    world, base_url = fuzzed_api
    schema = schemathesis.openapi.from_url(f"{base_url}/schema/openapi.json")
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = 0
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {issue_token(world, user_id=None, admin=True)}"
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,  # the same cases on every run: a failure here is reproducible
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def fuzz(case: Any) -> None:
                response = case.call(session=http, timeout=60)
                statuses[response.status_code // 100] += 1
                case.validate_response(response, checks=CHECKS)

            try:
                fuzz()
            except Exception as exc:  # collect every operation's failure, then report all
                failures.append(f"{operation.verbose_name}: {str(exc)[:2000]}")
    assert operations >= 10, operations
    # Valid inputs reach the handlers: a spec that made every case a 400 would test nothing.
    assert statuses[2] >= operations * 2, statuses
    assert not failures, "\n\n".join(failures)
