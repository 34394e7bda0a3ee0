"""No client input may cause a 5xx: schemathesis fuzzes every operation of the OpenAPI schema.

Bounded (a few dozen cases per operation and mode) so it stays well under a minute. Job routes
are fuzzed twice: as a stranger (random ids and tokens) and with a real job's id and token, so
generated reports reach the controller.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from server_helpers import SMALL_JOB

from autolr.server.app import create_app
from autolr.server.settings import Settings

EXAMPLES = 25
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    path = tmp_path_factory.mktemp("fuzz") / "autolr.db"
    return create_app(Settings(database_url=f"sqlite:///{path}", max_body_bytes=256 * 1024))


@pytest.fixture(scope="module")
def schema(app: FastAPI) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(operation: Any, mode: GenerationMode, **fixed: Any) -> bool:
    """Fuzz one operation; False when nothing can be generated (e.g. no negative inputs)."""
    strategy = operation.as_strategy(generation_mode=mode, **fixed)

    @FUZZ_SETTINGS
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call()
        case.validate_response(response, checks=[not_a_server_error])

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        return False
    return True


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_causes_a_server_error(schema: Any, mode: GenerationMode) -> None:
    operations = _operations(schema)
    assert len(operations) >= 6
    fuzzed = {op.label for op in operations if _fuzz(op, mode)}
    assert {"POST /v1/jobs", "POST /v1/jobs/{job_id}/reports", "GET /v1/jobs"} <= fuzzed


def test_no_report_on_a_real_job_causes_a_server_error(schema: Any, app: FastAPI) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        job = client.post("/v1/jobs", json=SMALL_JOB).json()
    auth = {"Authorization": f"Bearer {job['token']}"}
    fuzzed = set()
    for operation in _operations(schema):
        if "{job_id}" not in operation.path:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fixed = {"path_parameters": {"job_id": job["job_id"]}, "headers": auth}
            if _fuzz(operation, mode, **fixed):
                fuzzed.add((operation.label, mode))
    assert ("POST /v1/jobs/{job_id}/reports", GenerationMode.NEGATIVE) in fuzzed
    assert ("POST /v1/jobs/{job_id}/reports", GenerationMode.POSITIVE) in fuzzed
