"""Operational routes: liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from autolr.server.deps import MetricsDep
from autolr.server.models import Health

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """Answers at once from the event loop (``async``: it never waits for the thread pool),
    so it stays fast while decisions are being computed."""
    return Health()


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    summary="Prometheus metrics",
)
def metrics(registry: MetricsDep) -> Response:
    """Prometheus text format: jobs by status, reports, decision latency, errors."""
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)
