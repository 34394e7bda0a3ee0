"""``autolr jobs list|show|cancel`` and ``autolr export`` against a real server."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from ship_helpers import ADMIN_KEY
from typer.testing import CliRunner

from autolr.cli import app
from autolr.cli_jobs import EXPORT_COLUMNS
from autolr.server.testing import ServerProcess, free_port


@pytest.fixture
def cli(live_server: ServerProcess) -> Callable[..., Any]:
    """Run ``autolr ARGS`` against the live server (AUTOLR_SERVER), return the result."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
        return runner.invoke(
            app,
            list(args),
            env={"AUTOLR_SERVER": live_server.url, "AUTOLR_ADMIN_KEY": "", **(env or {})},
        )

    return invoke


def detail(server: ServerProcess, job: dict[str, Any]) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/v1/jobs/{job['job_id']}",
        headers={"Authorization": f"Bearer {job['token']}"},
        timeout=30,
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_list_shows_a_table_of_jobs_with_their_lr(
    cli: Callable[..., Any],
    live_server: ServerProcess,
    finished_job: dict[str, Any],
    running_job: dict[str, Any],
) -> None:
    result = cli("jobs", "list", "--admin-key", ADMIN_KEY)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if line.split()[:2] == ["job", "status"])
    assert header.split() == ["job", "status", "stage", "steps", "lr", "created", "name"]
    for job, status in ((finished_job, "finished"), (running_job, "running")):
        [row] = [line for line in lines if job["job_id"] in line]
        cells = row.split()
        assert cells[1] == status
        info = detail(live_server, job)
        assert cells[3] == f"{info['steps_used']}/{info['total_steps']}"
        assert float(cells[4]) == pytest.approx(info["current"]["lr"], rel=1e-3)
        # aligned: every row's status column starts where the header's does
        assert row.index(status) == header.index("status")


def test_a_jobs_name_shows_in_list_show_and_export(
    cli: Callable[..., Any], make_job: Callable[..., dict[str, Any]]
) -> None:
    job = make_job(segments=1, name="vit-b16 warm restart")
    listed = cli("jobs", "list", "--admin-key", ADMIN_KEY)
    [row] = [line for line in listed.output.splitlines() if job["job_id"] in line]
    assert row.rstrip().endswith("vit-b16 warm restart")
    shown = cli("jobs", "show", job["job_id"], "--token", job["token"])
    assert any(
        line.split() == ["name", "vit-b16", "warm", "restart"] for line in shown.output.splitlines()
    )
    exported = cli("export", job["job_id"], "--token", job["token"])
    assert json.loads(exported.output)["name"] == "vit-b16 warm restart"


def test_list_needs_the_admin_key_when_the_server_has_one(cli: Callable[..., Any]) -> None:
    result = cli("jobs", "list")
    assert result.exit_code == 1
    assert "401" in result.output and "admin key" in result.output


def test_list_reads_the_admin_key_from_the_environment(
    cli: Callable[..., Any], finished_job: dict[str, Any]
) -> None:
    result = cli("jobs", "list", "--status", "finished", env={"AUTOLR_ADMIN_KEY": ADMIN_KEY})
    assert result.exit_code == 0, result.output
    assert finished_job["job_id"] in result.output and "running" not in result.output


def test_show_prints_config_and_one_row_per_stage(
    cli: Callable[..., Any], live_server: ServerProcess, finished_job: dict[str, Any]
) -> None:
    result = cli("jobs", "show", finished_job["job_id"], "--token", finished_job["token"])
    assert result.exit_code == 0, result.output
    info = detail(live_server, finished_job)
    out = result.output
    assert "τ" in out and "chosen lr" in out and "probes" in out
    assert "total_steps" in out and "1200" in out
    rows = [line.split() for line in out.splitlines()]
    stage_rows = [r for r in rows if r and r[0].isdigit() and len(r) >= 7]
    assert [int(r[0]) for r in stage_rows] == [s["stage"] for s in info["stages"]]
    for cells, stage in zip(stage_rows, info["stages"], strict=True):
        assert int(cells[1]) == stage["tau"]
        assert int(cells[3]) == len(stage["probes"])
        assert float(cells[5]) == pytest.approx(stage["chosen_lr"], rel=1e-3)


def test_show_with_a_wrong_token_fails_with_the_servers_message(
    cli: Callable[..., Any], finished_job: dict[str, Any]
) -> None:
    result = cli("jobs", "show", finished_job["job_id"], "--token", "wrong")
    assert result.exit_code == 1
    assert "404" in result.output and "not found" in result.output


def test_show_without_credentials_says_which_option_is_missing(
    cli: Callable[..., Any], finished_job: dict[str, Any]
) -> None:
    result = cli("jobs", "show", finished_job["job_id"])
    assert result.exit_code == 1 and "--token" in result.output


def test_cancel_stops_a_running_job(
    cli: Callable[..., Any], live_server: ServerProcess, make_job: Callable[..., dict[str, Any]]
) -> None:
    job = make_job(segments=1)
    result = cli("jobs", "cancel", job["job_id"], "--token", job["token"])
    assert result.exit_code == 0, result.output
    assert f"job {job['job_id']}: cancelled" in result.output
    assert detail(live_server, job)["status"] == "cancelled"


def test_cancel_leaves_a_finished_job_alone(
    cli: Callable[..., Any], live_server: ServerProcess, finished_job: dict[str, Any]
) -> None:
    result = cli("jobs", "cancel", finished_job["job_id"], "--token", finished_job["token"])
    assert result.exit_code == 0 and "nothing to cancel" in result.output
    assert detail(live_server, finished_job)["status"] == "finished"


def test_export_json_is_the_schedule_with_the_config(
    cli: Callable[..., Any], live_server: ServerProcess, finished_job: dict[str, Any]
) -> None:
    result = cli("export", finished_job["job_id"], "--token", finished_job["token"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    info = detail(live_server, finished_job)
    assert document["config"] == info["config"] and document["job_id"] == finished_job["job_id"]
    rows = document["schedule"]
    assert len(rows) == len(info["segments"])
    assert all(tuple(row) == EXPORT_COLUMNS for row in rows)
    for row, record in zip(rows, info["segments"], strict=True):
        inst = record["instruction"]
        assert (row["kind"], row["lr"], row["lr_end"]) == (inst["kind"], inst["lr"], inst["lr_end"])
    for before, after in itertools.pairwise(rows):  # contiguous on the step axis
        assert after["start_step"] == before["start_step"] + before["steps"] + before["extra_steps"]
    assert rows[-1]["start_step"] + rows[-1]["steps"] == info["steps_used"] == 1200
    reused = {
        (s["stage"], s["reused_probe"]) for s in info["stages"] if s["reused_probe"] is not None
    }
    assert {(r["stage"], r["probe"]) for r in rows if r["kept"]} == reused


def test_export_csv_to_a_file_holds_the_same_rows(
    cli: Callable[..., Any], finished_job: dict[str, Any], tmp_path: Path
) -> None:
    as_json = json.loads(
        cli("export", finished_job["job_id"], "--token", finished_job["token"]).output
    )
    out = tmp_path / "schedule.csv"
    result = cli(
        "export",
        finished_job["job_id"],
        "--token",
        finished_job["token"],
        "--format",
        "csv",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {len(as_json['schedule'])} segments" in result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    for row, expected in zip(rows, as_json["schedule"], strict=True):
        assert float(row["lr"]) == expected["lr"] and float(row["lr_end"]) == expected["lr_end"]
        assert int(row["steps"]) == expected["steps"] and row["kind"] == expected["kind"]
        assert bool(int(row["kept"])) == expected["kept"]
        assert row["probe"] == ("" if expected["probe"] is None else str(expected["probe"]))


def test_an_unreachable_server_is_one_clear_line(cli: Callable[..., Any]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("jobs", "list", "--server", url)
    assert result.exit_code == 1
    assert f"cannot reach the autolr server at {url}" in result.output


def test_help_names_the_environment_variables(cli: Callable[..., Any]) -> None:
    result = cli("export", "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("AUTOLR_SERVER", "AUTOLR_ADMIN_KEY", "--format", "--out"):
        assert name in result.output


def test_every_command_talks_through_the_clients_transport(
    cli: Callable[..., Any],
    make_job: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One HTTP client: URL joining, credentials and error answers are `HttpTransport`'s."""
    from autolr.client._http import HttpTransport

    sent: list[tuple[str, str]] = []
    send = HttpTransport._request

    def spy(self: HttpTransport, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        sent.append((method, path))
        return send(self, method, path, **kwargs)

    monkeypatch.setattr(HttpTransport, "_request", spy)
    job = make_job(segments=1)
    sent.clear()
    for args in (
        ("jobs", "list", "--admin-key", ADMIN_KEY),
        ("jobs", "show", job["job_id"], "--token", job["token"]),
        ("export", job["job_id"], "--token", job["token"]),
        ("jobs", "cancel", job["job_id"], "--token", job["token"]),
    ):
        assert cli(*args).exit_code == 0
    path = f"/v1/jobs/{job['job_id']}"
    assert {("GET", "/v1/jobs"), ("GET", path), ("DELETE", path)} <= set(sent)
    assert all(p.startswith("/v1/jobs") for _, p in sent)
