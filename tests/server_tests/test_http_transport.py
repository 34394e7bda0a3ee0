"""`HttpTransport` against the real app: protocol, error mapping, timeouts and retries.

Network faults are injected with an `httpx.MockTransport` in front of FastAPI's TestClient, so
every answer that does arrive comes from the real server code and database.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from server_helpers import SMALL_JOB

from autolr.client._http import (
    DEFAULT_TIMEOUT,
    HttpTransport,
    JobCancelled,
    RequestRejected,
    ServerUnavailable,
    Unauthorized,
)
from autolr.client.errors import TransportError
from autolr.config import TunerConfig
from autolr.controller import Controller
from autolr.errors import ConfigError, Conflict, JobFinished, JobNotFound, ReportError
from autolr.protocol import Instruction, Report
from autolr.simulate import NoisyQuadratic, run_job

CONFIG = TunerConfig(**SMALL_JOB)
LOSE_ANSWER = -1


class Faulty:
    """An httpx handler that forwards to the app, failing on demand first.

    ``faults`` is consumed one per request: an exception class to raise (as if the network
    failed), an int status to answer instead of forwarding, `LOSE_ANSWER` to forward and then
    fail as if the answer was lost, or None to forward.
    """

    def __init__(self, app_client: TestClient) -> None:
        self.app = app_client
        self.faults: list[type[Exception] | int | None] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        fault = self.faults.pop(0) if self.faults else None
        if isinstance(fault, type):
            raise fault("injected", request=request)  # type: ignore[call-arg]
        if isinstance(fault, int) and fault != LOSE_ANSWER:
            return httpx.Response(
                fault, json={"message": "injected", "code": "x"}, headers={"Retry-After": "0"}
            )
        answer = self.app.request(
            request.method,
            request.url.path,
            params=dict(request.url.params),
            content=request.content,
            headers=dict(request.headers),
        )
        if fault == LOSE_ANSWER:
            raise httpx.ReadError("answer lost", request=request)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


@pytest.fixture
def faulty(client: TestClient) -> Faulty:
    return Faulty(client)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def transport(faulty: Faulty, sleeps: list[float]) -> Iterator[HttpTransport]:
    http = httpx.Client(transport=httpx.MockTransport(faulty), timeout=DEFAULT_TIMEOUT)
    t = HttpTransport(
        "http://autolr.test",
        client=http,
        retries=3,
        backoff=0.1,
        backoff_max=0.3,
        sleep=sleeps.append,
    )
    yield t
    t.close()
    http.close()


def test_runs_a_job_to_the_end_like_the_embedded_controller(transport: HttpTransport) -> None:
    instruction = transport.start(CONFIG)
    assert transport.job_id is not None
    model = NoisyQuadratic(seed=1)
    while not instruction.finished:
        instruction = transport.report(model.follow(instruction))
    embedded = Controller(CONFIG)
    run_job(embedded, NoisyQuadratic(seed=1))
    served = transport.job()
    assert [Instruction.model_validate(s) for s in served["schedule"]] == embedded.schedule


def test_works_with_fastapi_testclient_injected_directly(client: TestClient) -> None:
    transport = HttpTransport("http://testserver", client=client)
    first = transport.start(CONFIG)
    assert transport.report(NoisyQuadratic(seed=0).follow(first)).segment == 1
    transport.close()
    assert client.get("/healthz").status_code == 200  # an injected client is not closed


def test_nan_and_inf_losses_travel_as_null(transport: HttpTransport, faulty: Faulty) -> None:
    first = transport.start(CONFIG)
    losses = [1.0] * 5 + [math.nan, math.inf, -math.inf] + [1.0] * (first.steps - 8)
    transport.report(Report(segment=0, train_losses=losses))
    assert b"null,null,null" in faulty.requests[-1].content
    assert transport.job()["stages"][0]["probes"][0]["ok"] is False


def test_retries_connection_errors_with_capped_jittered_backoff(
    transport: HttpTransport, faulty: Faulty, sleeps: list[float]
) -> None:
    first = transport.start(CONFIG)
    faulty.faults = [httpx.ConnectError, httpx.ReadTimeout, 503]
    assert transport.report(NoisyQuadratic(seed=0).follow(first)).segment == 1
    assert len(faulty.requests) == 1 + 4 and len(sleeps) == 3
    assert all(0 <= s <= cap for s, cap in zip(sleeps, [0.1, 0.2, 0.3], strict=True))


def test_a_report_whose_answer_was_lost_is_answered_again(
    transport: HttpTransport, faulty: Faulty
) -> None:
    first = transport.start(CONFIG)
    faulty.faults = [LOSE_ANSWER]  # the report lands, its answer is lost on the way back
    answer = transport.report(NoisyQuadratic(seed=0).follow(first))
    assert answer.segment == 1 and transport.job()["steps_used"] == first.steps
    assert [r.method for r in faulty.requests] == ["POST", "POST", "POST", "GET"]


def test_server_unavailable_after_bounded_retries(
    transport: HttpTransport, faulty: Faulty, sleeps: list[float]
) -> None:
    first = transport.start(CONFIG)
    faulty.faults = [httpx.ConnectError] * 10
    with pytest.raises(ServerUnavailable, match="after 4 attempt") as info:
        transport.report(NoisyQuadratic(seed=0).follow(first))
    assert isinstance(info.value, TransportError) and isinstance(info.value, ConnectionError)
    assert len(sleeps) == 3


def test_after_an_outage_each_call_tries_once_until_one_succeeds(
    transport: HttpTransport, faulty: Faulty
) -> None:
    first = transport.start(CONFIG)
    report = NoisyQuadratic(seed=0).follow(first)
    faulty.faults = [httpx.ConnectError] * 5
    with pytest.raises(ServerUnavailable):
        transport.report(report)
    sent = len(faulty.requests)
    with pytest.raises(ServerUnavailable, match="after 1 attempt"):
        transport.report(report)
    assert len(faulty.requests) == sent + 1
    assert transport.report(report).segment == 1  # back: the report lands
    faulty.faults = [httpx.ConnectError] * 2
    assert transport.report(report).segment == 1  # full retries again (duplicate: same answer)


def test_strict_retries_fully_every_time(faulty: Faulty, client: TestClient) -> None:
    http = httpx.Client(transport=httpx.MockTransport(faulty))
    transport = HttpTransport("http://x", client=http, retries=2, backoff=0, strict=True)
    first = transport.start(CONFIG)
    faulty.faults = [httpx.ConnectError] * 6
    for _ in range(2):
        with pytest.raises(ServerUnavailable, match="after 3 attempt"):
            transport.report(NoisyQuadratic(seed=0).follow(first))
    http.close()


def test_start_does_not_retry_when_the_job_may_have_been_created(
    transport: HttpTransport, faulty: Faulty, client: TestClient
) -> None:
    faulty.faults = [httpx.ConnectError, 503]
    transport.start(CONFIG)  # nothing reached the server: safe to retry
    faulty.faults = [httpx.ReadTimeout, None]
    with pytest.raises(ServerUnavailable, match="after 1 attempt"):
        transport.start(CONFIG)
    assert len(client.get("/v1/jobs").json()["jobs"]) == 1


def test_busy_409_is_retried(transport: HttpTransport, faulty: Faulty) -> None:
    first = transport.start(CONFIG)
    busy = httpx.Response(409, json={"code": "busy", "message": "m", "retryable": True})
    responses = iter([busy])
    forward = faulty.__call__

    def handler(request: httpx.Request) -> httpx.Response:
        return next(responses, None) or forward(request)

    transport._client = httpx.Client(transport=httpx.MockTransport(handler))
    assert transport.report(NoisyQuadratic(seed=0).follow(first)).segment == 1
    transport._client.close()


def test_wrong_segment_raises_conflict_with_the_expected_segment(
    transport: HttpTransport,
) -> None:
    first = transport.start(CONFIG)
    report = NoisyQuadratic(seed=0).follow(first).model_copy(update={"segment": 4})
    with pytest.raises(Conflict) as info:
        transport.report(report)
    assert (info.value.expected, info.value.got) == (0, 4)


def test_error_answers_map_to_domain_errors(transport: HttpTransport, client: TestClient) -> None:
    with pytest.raises(ConfigError, match="segments of this job"):
        HttpTransport("http://testserver", client=client).start(
            CONFIG.model_copy(update={"total_steps": None, "tau_max": 10**6})
        )
    first = transport.start(CONFIG)
    with pytest.raises(ReportError, match=f"{first.steps + 1} train_losses"):
        transport.report(Report(segment=0, train_losses=[1.0] * (first.steps + 1)))
    transport.cancel()
    with pytest.raises(JobCancelled) as info:
        transport.report(NoisyQuadratic(seed=0).follow(first))
    assert isinstance(info.value, RequestRejected) and not isinstance(info.value, TransportError)
    stranger = HttpTransport(
        "http://testserver", client=client, job_id=transport.job_id, token="not-the-token"
    )
    with pytest.raises(JobNotFound):
        stranger.job()
    anonymous = HttpTransport("http://testserver", client=client, job_id=transport.job_id)
    with pytest.raises(Unauthorized):
        anonymous.job()


def test_finished_job_raises_job_finished(transport: HttpTransport) -> None:
    instruction = transport.start(CONFIG)
    model = NoisyQuadratic(seed=0)
    while not instruction.finished:
        instruction = transport.report(model.follow(instruction))
    with pytest.raises(JobFinished):
        transport.report(Report(segment=instruction.segment, train_losses=[1.0]))


def test_admin_key_is_sent_on_create(make_client: Callable[..., TestClient]) -> None:
    client = make_client(admin_key="k3y")
    with pytest.raises(Unauthorized):
        HttpTransport("http://testserver", client=client).start(CONFIG)
    assert HttpTransport("http://testserver", client=client, admin_key="k3y").start(CONFIG)


def test_the_admin_key_lists_jobs_and_opens_any_job(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(admin_key="k3y")
    owner = HttpTransport("http://testserver", client=client, admin_key="k3y")
    owner.start(CONFIG)
    admin = HttpTransport("http://testserver", client=client, admin_key="k3y")
    page = admin.list_jobs(status="running", limit=5)
    assert [job["job_id"] for job in page["jobs"]] == [owner.job_id]
    assert page["next_offset"] is None
    opened = HttpTransport("http://testserver", client=client, job_id=owner.job_id, admin_key="k3y")
    assert opened.job()["job_id"] == owner.job_id  # no token: the key opens the job
    with pytest.raises(Unauthorized) as refused:
        HttpTransport("http://testserver", client=client).list_jobs()
    assert refused.value.http_status == 401 and "admin key" in str(refused.value)


def test_a_decoded_refusal_carries_the_answers_status(transport: HttpTransport) -> None:
    first = transport.start(CONFIG)
    with pytest.raises(Conflict) as conflict:
        transport.report(Report(segment=first.segment + 5, train_losses=[1.0]))
    assert conflict.value.http_status == 409
    with pytest.raises(ReportError) as bad:
        transport.report(Report(segment=0, train_losses=[1.0] * (first.steps + 1)))
    assert bad.value.http_status == 422
    assert ReportError("raised here").http_status is None  # not decoded from an answer


def test_state_dict_reattaches_to_the_same_job(
    transport: HttpTransport, client: TestClient
) -> None:
    first = transport.start(CONFIG)
    second = transport.report(NoisyQuadratic(seed=0).follow(first))
    state = transport.state_dict()
    assert state["kind"] == "http" and state["job_id"] == transport.job_id
    fresh = HttpTransport("http://testserver", client=client)
    assert fresh.load_state_dict(state) == second
    assert fresh.job_id == transport.job_id
    with pytest.raises(ValueError, match="embedded mode"):
        fresh.load_state_dict({"kind": "local", "controller": {}})
    offline = HttpTransport("http://127.0.0.1:9", retries=0)
    offline.attach(state)  # no request: works with the server down
    assert offline.job_id == transport.job_id
    with pytest.raises(ServerUnavailable):
        offline.load_state_dict(state)
    offline.close()


def test_default_client_has_explicit_timeouts_and_is_closed() -> None:
    transport = HttpTransport("http://127.0.0.1:9")
    assert transport._client.timeout == DEFAULT_TIMEOUT
    transport.close()
    assert transport._client.is_closed
    with pytest.raises(RuntimeError, match="no job yet"):
        transport.report(Report(segment=0, train_losses=[1.0]))


def test_real_refused_connection_is_server_unavailable() -> None:
    with (
        HttpTransport("http://127.0.0.1:9", retries=1, backoff=0.01) as transport,
        pytest.raises(ServerUnavailable, match="cannot connect"),
    ):
        transport.start(CONFIG)


# ------------------------------------------------------------------ budgeted calls (issue 16)
def test_a_budgeted_call_gives_up_at_once_on_a_dead_or_silent_server(
    transport: HttpTransport, faulty: Faulty, sleeps: list[float]
) -> None:
    first = transport.start(CONFIG)
    report = NoisyQuadratic(seed=0).follow(first)
    for fault in (httpx.ConnectError, httpx.ReadTimeout):
        faulty.faults = [fault] * 5
        with pytest.raises(ServerUnavailable, match="after 1 attempt"):
            transport.report(report, budget=1.0)  # the caller reconnects on its own clock
    assert sleeps == []


def test_a_budgeted_call_retries_5xx_and_busy_within_its_budget(
    transport: HttpTransport, faulty: Faulty, sleeps: list[float]
) -> None:
    first = transport.start(CONFIG)
    faulty.faults = [503, 503]
    assert transport.report(NoisyQuadratic(seed=0).follow(first), budget=1.0).segment == 1
    assert len(sleeps) == 2 and sum(sleeps) <= 1.0


def test_each_attempt_of_a_budgeted_call_times_out_within_the_budget(
    transport: HttpTransport, faulty: Faulty
) -> None:
    first = transport.start(CONFIG)
    transport.report(NoisyQuadratic(seed=0).follow(first), budget=0.3)
    timeouts = faulty.requests[-1].extensions["timeout"]
    assert all(0 < timeouts[k] <= 0.3 for k in ("connect", "read", "write", "pool"))


def test_recorded_reports_come_back_as_reports(transport: HttpTransport) -> None:
    instruction = transport.start(CONFIG)
    model = NoisyQuadratic(seed=2)
    sent = []
    for _ in range(3):
        report = model.follow(instruction)
        sent.append(report)
        instruction = transport.report(report)
    assert transport.recorded_reports(1, budget=5.0) == sent[1:]
    assert transport.recorded_reports(0, 2) == sent[:2]


def test_a_resent_report_with_other_losses_raises_report_differs(
    transport: HttpTransport,
) -> None:
    from autolr.client._http import ReportDiffers

    first = transport.start(CONFIG)
    report = NoisyQuadratic(seed=0).follow(first)
    transport.report(report)
    other = report.model_copy(update={"train_losses": [x + 1 for x in report.train_losses]})
    n = first.steps
    with pytest.raises(ReportDiffers, match=f"train_losses differ at {n} of {n}") as info:
        transport.report(other)
    assert info.value.segment == 0 and info.value.reconcilable
