"""Schemathesis against the running API's own OpenAPI document, with valid credentials:
no 5xx, and every answer matches what the document says (status, content type, schema,
headers), for cases generated from every operation's schema.

Driven through Hypothesis directly rather than `schema.parametrize()`: schemathesis's
pytest fixture loader reads a pytest internal (`_nodeid`) that pytest 9.2 no longer has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 25
# `ignored_auth` sends its own invalid credentials, but ours ride along on every call (the
# key is passed as a header), so it sees them accepted and cries wolf. Authentication has
# a test of its own: tests/integration/api/test_authorization.py (every route x 18 credentials).
#
# `positive_data_acceptance` expects every schema-valid request to be accepted. Ours refuse
# some with a 422 naming the rule, for rules JSON Schema cannot state: a cursor must be one
# the API issued, a journey's graph must be sound and a condition's value must suit its
# operator, and no string may hold NUL (PostgreSQL's jsonb refuses it). What the schema can
# say, it says (a patient context requires `id`: schemathesis found that gap, now closed).
EXCLUDED = [schemathesis.checks.ignored_auth, schemathesis.checks.positive_data_acceptance]


def fuzz(operation: Any, stack: Stack, cases: dict[str, Counter[int]]) -> Callable[[], None]:
    """A Hypothesis test of one operation, counting its cases."""
    headers = {"X-API-Key": stack.api_key}

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              derandomize=True, suppress_health_check=list(HealthCheck))  # fmt: skip
    def check(case: schemathesis.Case) -> None:
        # Ours are the credentials: a generated Authorization header beside them is a 401.
        if case.headers:
            case.headers.pop("Authorization", None)
        response = case.call_and_validate(base_url=stack.api_url, headers=headers, timeout=30,
                                          excluded_checks=EXCLUDED)  # fmt: skip
        seen = cases.setdefault(operation.label, Counter())
        seen[response.status_code] += 1

    return check  # type: ignore[no-any-return]


def test_every_operation_answers_as_documented(stack: Stack) -> None:
    document = httpx.get(f"{stack.api_url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    cases: dict[str, Counter[int]] = {}
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            fuzz(operation, stack, cases)()
        except (Exception, BaseExceptionGroup) as exc:  # every operation runs, then all fail
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:1500]}"
    total = sum(sum(c.values()) for c in cases.values())
    print(f"schemathesis: {len(cases)} operations, {total} cases: {cases}")
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
    operations = sum(len(methods) for methods in document["paths"].values())
    assert len(cases) == operations  # every operation ran
    for label, statuses in cases.items():  # and got past authentication, not only to 401s
        assert set(statuses) - {401}, f"{label}: every case was refused: {statuses}"
