"""Schemathesis over the published /api/v1/schema/, against the live app on PostgreSQL.

Every operation except the signed webhook receivers (tested with real signatures in
payments/tests/test_webhooks.py) gets generated requests, as a shopper and as staff; each
answer must be no server error, a documented status code with a documented content type, and
a body that matches the documented schema. The run counts its cases and fails below 1,000."""

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import place_order
from conftest import api_token_for

pytestmark = [pytest.mark.django_db(transaction=True)]

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
EXCLUDED_PATHS = r"^/api/v1/webhooks/"  # signed: payments/tests/test_webhooks.py
EXAMPLES_PER_OPERATION = 25
MINIMUM_CASES = 1000


def _world():
    shopper, staff = UserFactory(), StaffFactory(is_superuser=True)
    for _ in range(3):
        ProductFactory(on_hand=50)
    place_order(user=shopper)
    return {"anonymous": None, "shopper": api_token_for(shopper), "staff": api_token_for(staff)}


def test_every_operation_conforms_to_the_published_schema(live_server):
    tokens = _world()
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/").exclude(path_regex=EXCLUDED_PATHS)
    cases: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    details: dict[str, str] = {}

    def exercise(operation, role: str, token: str | None) -> None:
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case):
            cases[operation.label] += 1
            headers = {"Authorization": f"Token {token}"} if token else {}
            response = case.call(base_url=live_server.url, headers=headers)
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, FailureGroup) as exc:  # collected, reported together below
                found = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
                for failure in found:
                    title = getattr(failure, "title", type(failure).__name__)
                    failures[f"{role} {operation.label} -> {response.status_code}: {title}"] += 1
                    details.setdefault(f"{role} {operation.label} -> {response.status_code}: {title}", str(exc)[:800])

        run()

    for result in schema.get_all_operations():
        for role, token in tokens.items():
            exercise(result.ok(), role, token)

    total = sum(cases.values())
    print(f"schemathesis: {total} cases over {len(cases)} operations, {failures.total()} failures")
    assert not failures, (
        "\n".join(f"{n} x {key}" for key, n in sorted(failures.items()))
        + "\n\n"
        + "\n\n".join(list(details.values())[:5])
    )
    assert total >= MINIMUM_CASES, cases
