"""``/metrics`` by Prometheus's conventions, read back with prometheus_client's own parser."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from server_helpers import bearer, create_job

import autolr
from autolr.server.store import JOB_STATUSES


def scrape(client: TestClient) -> dict[str, list[Sample]]:
    """Every family of a scrape, by name, with its samples (parsing fails on bad syntax)."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    return {f.name: list(f.samples) for f in text_string_to_metric_families(answer.text)}


def test_no_created_series_and_counters_end_in_total(client: TestClient) -> None:
    create_job(client)
    families = scrape(client)
    names = [s.name for samples in families.values() for s in samples]
    assert not [n for n in names if n.endswith("_created")]
    assert "autolr_jobs_created_total" in names and "autolr_jobs_created_created" not in names


def test_each_label_keeps_one_meaning(client: TestClient) -> None:
    job = create_job(client)
    client.get(f"/v1/jobs/{job['job_id']}", headers=bearer("wrong"))  # a 404
    client.get("/no/such/path")
    families = scrape(client)
    for name, samples in families.items():
        for sample in samples:
            if "status" in sample.labels:  # a job's state, only on the jobs gauge
                assert name == "autolr_jobs" and sample.labels["status"] in JOB_STATUSES
            if "code" in sample.labels:  # an HTTP status code, wherever it appears
                assert sample.labels["code"].isdigit() and len(sample.labels["code"]) == 3, name
    errors = families["autolr_errors"]
    assert {(s.labels["code"], s.labels["error"]) for s in errors} == {("404", "not_found")}


def test_http_requests_are_counted_by_route_template_and_timed(client: TestClient) -> None:
    job = create_job(client)
    for _ in range(3):
        client.get(f"/v1/jobs/{job['job_id']}", headers=bearer(job["token"]))
    client.get("/no/such/path")
    families = scrape(client)
    counts = {
        (s.labels["method"], s.labels["route"], s.labels["code"]): s.value
        for s in families["autolr_http_requests"]
        if s.name.endswith("_total")
    }
    assert counts[("GET", "/v1/jobs/{job_id}", "200")] == 3
    assert counts[("POST", "/v1/jobs", "201")] == 1
    assert counts[("GET", "unmatched", "404")] == 1
    assert not any(job["job_id"] in route for _, route, _ in counts)  # ids never become labels
    durations = {
        s.labels["route"]: s.value
        for s in families["autolr_http_request_duration_seconds"]
        if s.name.endswith("_count")
    }
    assert durations["/v1/jobs/{job_id}"] == 3


def test_build_info_and_process_metrics(client: TestClient) -> None:
    families = scrape(client)
    [info] = families["autolr_build_info"]
    assert info.name == "autolr_build_info" and info.value == 1
    assert info.labels["version"] == autolr.__version__
    assert families["process_resident_memory_bytes"][0].value > 0
    assert families["process_cpu_seconds"][0].value > 0
