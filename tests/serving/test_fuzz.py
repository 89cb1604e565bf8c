"""Property-based fuzz of the live API from its OpenAPI schema: no input gives a 5xx."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402


def test_no_5xx_from_the_schema(server):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    failures = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(max_examples=40, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case):
            response = case.call(base_url=server.url, timeout=30)
            if response.status_code >= 500:
                failures.append((op.path, case.body, case.path_parameters, case.query,
                                 response.status_code, response.text[:300]))

        check()
    assert not failures, failures[:5]
