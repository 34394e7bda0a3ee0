"""Two server processes on one PostgreSQL database serve the same job, alternately and at
once, with no lost update."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from autolr.client._http import HttpTransport
from autolr.config import TunerConfig
from autolr.controller import Controller
from autolr.server.db import make_engine
from autolr.server.testing import ServerProcess
from autolr.server.views import SegmentPublic, as_public
from autolr.simulate import NoisyQuadratic, run_job

CONFIG = TunerConfig(
    min_lr=1e-3,
    max_lr=1.0,
    total_steps=600,
    min_stages=2,
    probes_per_stage=3,
    initial_probes=2,
    seed=21,
)


@pytest.mark.postgres
def test_two_replicas_alternate_on_one_job_without_lost_updates(
    server_factory: Callable[..., ServerProcess], postgres_url: str
) -> None:
    a, b = server_factory(postgres_url), server_factory(postgres_url)
    with ThreadPoolExecutor(2) as pool:  # start together: the first migration is shared
        list(pool.map(lambda s: s.start(), (a, b)))
    via_a = HttpTransport(a.url, strict=True)
    instruction = via_a.start(CONFIG)
    via_b = HttpTransport(b.url, strict=True)
    via_b.load_state_dict({**via_a.state_dict(), "base_url": b.url})
    model = NoisyQuadratic(seed=8)
    answers = 0
    with ThreadPoolExecutor(2) as pool:
        while not instruction.finished:
            report = model.follow(instruction)
            if instruction.segment % 3 == 2:  # every third report goes to both at once
                both = list(pool.map(lambda t, r=report: t.report(r), (via_a, via_b)))
                assert both[0] == both[1]
                instruction = both[0]
            else:
                replica = via_a if instruction.segment % 2 == 0 else via_b
                instruction = replica.report(report)
            answers += 1

    embedded = Controller(CONFIG)
    run_job(embedded, NoisyQuadratic(seed=8))
    for transport in (via_a, via_b):
        served = transport.job()
        assert served["status"] == "finished"
        assert served["segments"] == as_public(SegmentPublic, embedded.segments)
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        version, segment = conn.execute(sa.text("SELECT version, segment FROM jobs")).one()
        reports = conn.execute(sa.text("SELECT count(*) FROM reports")).scalar()
    engine.dispose()
    assert reports == answers == segment == len(embedded.segments)
    assert version == 1 + reports  # one version per applied report: none lost, none doubled
    via_a.close()
    via_b.close()
