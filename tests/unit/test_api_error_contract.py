"""Every error response matches the schema the OpenAPI document gives it: clients generated
from the document parse what the API answers. A body that is not JSON is a 422 with
`errors`, like any other; schemathesis then fuzzes every operation (a bounded number of
examples each) with response-schema conformance and no 5xx."""

from __future__ import annotations

import re

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.service_fixtures import api, api_settings, client  # noqa: F401


def _resolved(document: dict, schema: dict) -> dict:
    """`schema` with the document's components, so `$ref`s resolve."""
    return {**schema, "components": document.get("components", {})}


def _body_operations(document: dict) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in document["paths"].items() for method, op in item.items()
            if isinstance(op, dict) and "application/json" in op.get("requestBody", {}).get("content", {})]


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\x00", b'{"a": 1} trailing', b""])
def test_a_body_that_is_not_json_is_a_documented_422_on_every_operation(api, body):
    document = api.client.get("/openapi.json").json()
    operations = _body_operations(document)
    assert len(operations) >= 10
    for method, path in operations:
        # a valid value for each path parameter (an id is a number): the body is read first or the path is a 404
        url = re.sub(r"\{\w+_id\}", "1", path).replace("{", "").replace("}", "").replace("name", "x")
        response = api.client.request(method, url, content=body,
                                      headers={**api.headers, "Content-Type": "application/json"})
        if response.status_code == 404:
            continue
        assert response.status_code == 422, (method, path, response.status_code, response.text)
        documented = document["paths"][path][method.lower()]["responses"]["422"]["content"]["application/json"]
        jsonschema_rs.validate(_resolved(document, documented["schema"]), response.json())
        assert response.json()["errors"][0]["loc"][0] == "body", (method, path, response.json())


EXAMPLES_PER_OPERATION = 5  # per mode, x ~70 operations: a bounded run (about two minutes here)
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)  # bodies that fit the schema, and bodies that do not
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


def test_every_operation_answers_within_its_documented_schemas(client, api):
    """schemathesis over the app's own OpenAPI document, in process (ASGI), as alice."""
    loaded = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert len(operations) > 50
    failures = []
    for operation, mode in ((op, mode) for op in operations for mode in MODES):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers=api.headers, checks=CHECKS)

        try:
            check()
        except Unsatisfiable:  # an operation with no input has no negative case
            assert mode == GenerationMode.NEGATIVE and not operation.body and not operation.query
        except Exception as exc:  # every operation is tried; all failures are reported together
            failures.append(f"{operation.label} ({mode}): {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)
