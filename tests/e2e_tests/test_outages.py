"""Server mode keeps the run's contract through outages, hangs and restarts (issue 16).

A real ``autolr serve`` process (SQLite, and PostgreSQL where it answers), a real PyTorch
training loop, SIGKILLs at random steps with restarts after short delays, a server that
accepts connections and never answers. Whatever the service does, the run ends at exactly
``total_steps`` with the per-step LRs, the schedule and the final weights of the uninterrupted
run, and once the service is back its record equals ``tuner.schedule``.
"""

from __future__ import annotations

import logging
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from autolr.client import AutoLR, _link
from autolr.client._http import HttpTransport
from autolr.server.testing import ServerProcess

TOTAL_STEPS = 1200
CONFIG: dict[str, Any] = {
    "min_lr": 1e-3,
    "max_lr": 0.5,
    "total_steps": TOTAL_STEPS,
    "probes_per_stage": 3,
    "initial_probes": 2,
    "seed": 3,
    "probe_budget": None,  # every stage runs its 3 probes: GP decisions on the server
}


class Problem:
    """A small MLP regressing a noisy linear target, full-batch SGD: fully deterministic."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(256, 8, generator=generator)
        w = torch.randn(8, 1, generator=generator)
        self.y = self.x @ w + 0.1 * torch.randn(256, 1, generator=generator)
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
        )
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)

    def step(self) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(self.model(self.x), self.y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}


def _train(
    tuner: AutoLR, problem: Problem, *, start: int = 0, stop: int | None = None, **hooks: Any
) -> tuple[int, list[float], float]:
    """Train until finished (or ``stop``); the steps run, each step's LR, the longest step."""
    lrs: list[float] = []
    longest = 0.0
    before = hooks.get("before")
    step = start
    while not tuner.finished and (stop is None or step < stop):
        if before is not None:
            before(step)
        lrs.append(problem.lr)
        loss = problem.step()
        began = time.perf_counter()
        tuner.step(loss)
        longest = max(longest, time.perf_counter() - began)
        step += 1
        assert step <= TOTAL_STEPS, "trained past the budget"
    return step, lrs, longest


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    """The uninterrupted run (embedded: the same controller, so the same decisions)."""
    torch.set_num_threads(1)
    problem = Problem()
    tuner = AutoLR(problem.model, problem.optimizer, **CONFIG)
    steps, lrs, _ = _train(tuner, problem)
    assert steps == TOTAL_STEPS
    return {"schedule": tuner.schedule, "lrs": lrs, "weights": problem.weights()}


@pytest.fixture
def quick_resync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect at most 0.5 s apart (not up to 30 s): the test waits for it after restarts."""
    monkeypatch.setattr(_link, "RESYNC_MAX_S", 0.5)
    monkeypatch.setattr(_link, "RESYNC_FIRST_S", 0.25)


def _assert_uninterrupted(
    tuner: AutoLR, problem: Problem, steps: int, lrs: list[float], reference: dict[str, Any]
) -> None:
    assert tuner.finished and steps == TOTAL_STEPS == tuner.steps_run
    assert tuner.schedule == reference["schedule"]
    assert lrs == reference["lrs"]
    assert tuner.schedule[-1].kind != "probe"
    for name, value in problem.weights().items():
        assert torch.isfinite(value).all(), name
        assert torch.equal(value, reference["weights"][name]), name


def _assert_service_record(tuner: AutoLR) -> None:
    """The service's record, once synced, is the run's schedule."""
    assert tuner.sync(timeout=60), f"the service did not catch up ({tuner.service_state})"
    transport = tuner.transport
    assert isinstance(transport, HttpTransport)
    job = transport.job()
    assert job["status"] == "finished" and job["steps_used"] == TOTAL_STEPS
    assert [(s["kind"], s["lr"], s["lr_end"], s["steps"]) for s in job["schedule"]] == [
        (s.kind, s.lr, s.lr_end, s.steps) for s in tuner.schedule
    ]
    assert all(s["extra_steps"] == 0 for s in job["segments"])


class Killer:
    """SIGKILLs a server soon after a chosen step and restarts it once the training loop has
    met the outage (``wait_up``), after a short delay: a restart on a timer alone could come
    before the tuner's next request when a segment trains for longer than the outage."""

    def __init__(self, server: ServerProcess, rng: random.Random) -> None:
        self.server = server
        self.rng = rng
        self.up = threading.Event()
        self.up.set()
        self.landed = threading.Event()
        self.release = threading.Event()  # the loop has met the outage: restart
        self.kills = 0
        self.killed_in: list[str] = []
        self.errors: list[BaseException] = []

    def kill_soon(self, what: str) -> None:
        """Kill within 0.15 s (so often while a report is in flight); restart 0.2-1 s after
        ``wait_up``."""
        self.up.clear()
        self.landed.clear()
        self.release.clear()
        self.kills += 1
        self.killed_in.append(what)
        delay, down = self.rng.uniform(0.0, 0.15), self.rng.uniform(0.2, 1.0)

        def run() -> None:
            try:
                time.sleep(delay)
                self.server.kill()
                self.landed.set()
                self.release.wait(120)
                time.sleep(down)
                self.server.start()
            except BaseException as exc:  # reported by the test thread
                self.errors.append(exc)
            self.landed.set()
            self.up.set()

        threading.Thread(target=run, daemon=True).start()

    def wait_up(self) -> None:
        self.release.set()
        assert self.up.wait(120), "the server did not come back"
        assert not self.errors, self.errors


def _killed_run(
    server: ServerProcess,
    reference: dict[str, Any],
    kill_steps: list[int],
    seed: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Train with kills at (or just after) ``kill_steps``. Each outage lasts 1-2 segment
    boundaries of training after the kill lands (the tuner decides those itself), then the loop
    waits for the restart and trains slowly until the tuner has reconnected on its own clock,
    so that the next kill finds it talking to the server."""
    problem = Problem()
    tuner = AutoLR(problem.model, problem.optimizer, server=server.url, **CONFIG)
    killer = Killer(server, random.Random(seed))
    pending = sorted(kill_steps)
    boundaries: int | None = None  # boundaries the current outage lasts
    outage_until: int | None = None  # ends when the schedule has this many segments
    slow = False
    lrs: list[float] = []
    step = 0
    deadline = 0.0
    with caplog.at_level(logging.WARNING, logger="autolr.client"):
        while not tuner.finished:
            if boundaries is not None and killer.landed.is_set():
                outage_until, boundaries = len(tuner.schedule) + boundaries, None
            if outage_until is not None and len(tuner.schedule) >= outage_until:
                killer.wait_up()
                outage_until, slow, deadline = None, True, time.monotonic() + 60
            if slow:
                if tuner.service_state == "online":
                    slow = False
                else:
                    assert time.monotonic() < deadline, "the tuner did not reconnect"
                    time.sleep(0.002)
            idle = not slow and outage_until is None and boundaries is None
            if pending and step >= pending[0] and idle:
                first = len(pending) == len(kill_steps)
                pending.pop(0)
                inst = tuner.instruction
                killer.kill_soon(inst.kind if inst is not None else "-")
                boundaries = killer.rng.randint(1, 2)
                if not first:
                    # the later kills land before training goes on: landing up to 0.15 s
                    # late, a kill drifted ~200 steps, into the final anneal, where no
                    # boundary is left to meet it (the first kill still lands at random,
                    # often while a report is in flight)
                    assert killer.landed.wait(30), "the kill did not land"
            lrs.append(problem.lr)
            tuner.step(problem.step())
            step += 1
            assert step <= TOTAL_STEPS, "trained past the budget"
    killer.wait_up()
    assert killer.kills == len(kill_steps), f"{killer.kills} kills of {len(kill_steps)}"
    noticed = [r for r in caplog.records if "did not answer in time" in r.getMessage()]
    assert len(noticed) == killer.kills  # every outage was met, at a boundary or in flight
    _assert_uninterrupted(tuner, problem, step, lrs, reference)
    _assert_service_record(tuner)
    tuner.close()


def _kill_steps(reference: dict[str, Any], rng: random.Random, first: int | None) -> list[int]:
    """Three kill steps: ``first`` (or a random step of stage 0), then one in each half of the
    later stages' steps from which at least three segment boundaries (chunks included) come
    before the final anneal, so that an outage of 1-2 boundaries ends, and is met by a request,
    before the run's last, long segment (the range follows the schedule the controller makes,
    instead of steps that assumed one)."""
    ends, step = [], 0
    stage_1 = None
    for inst in reference["schedule"]:
        if inst.kind == "anneal":
            break
        if stage_1 is None and inst.stage >= 1:
            stage_1 = step
        step += inst.steps
        ends.append(step)
    assert stage_1 is not None and len(ends) >= 4, "no room for kills before the anneal"
    lo, hi = stage_1, ends[-4]
    middle = (lo + hi) // 2
    start = first if first is not None else rng.randrange(30, lo)
    return [start, rng.randrange(lo, middle), rng.randrange(middle, hi)]


def test_sigkills_at_random_steps_leave_the_run_as_if_uninterrupted_sqlite(
    server_factory: Callable[..., ServerProcess],
    sqlite_url: str,
    reference: dict[str, Any],
    quick_resync: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = server_factory(sqlite_url).start()
    # the first kill lands in stage 0's probes (the model is in a probe state when the server
    # dies); the others at random steps of the later stages
    kills = _kill_steps(reference, random.Random(16), first=45)
    _killed_run(server, reference, kills, seed=1, caplog=caplog)


@pytest.mark.postgres
def test_sigkills_at_random_steps_leave_the_run_as_if_uninterrupted_postgres(
    server_factory: Callable[..., ServerProcess],
    postgres_url: str,
    reference: dict[str, Any],
    quick_resync: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = server_factory(postgres_url).start()
    kills = _kill_steps(reference, random.Random(61), first=None)
    _killed_run(server, reference, kills, seed=2, caplog=caplog)


# ------------------------------------------------------------------ hangs
class BlackHole:
    """A TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.held: list[socket.socket] = []
        self.accepted = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)
            self.accepted += 1

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


#: Local decisions cost a GP fit (tens to hundreds of ms on a busy machine); the bound is on
#: waiting for the service, so a step may take that much longer.
DECISION_SLACK_S = 1.5


def test_a_black_hole_server_never_blocks_a_step_past_the_bound(
    black_hole: BlackHole, reference: dict[str, Any]
) -> None:
    bound = 0.4
    problem = Problem()
    began = time.perf_counter()
    tuner = AutoLR(
        problem.model, problem.optimizer, server=black_hole.url, step_timeout=bound, **CONFIG
    )
    built = time.perf_counter() - began
    steps, lrs, longest = _train(tuner, problem)
    assert black_hole.accepted >= 2  # it was asked (create, then a sync attempt or more)
    assert built < bound + DECISION_SLACK_S
    assert longest < bound + DECISION_SLACK_S
    _assert_uninterrupted(tuner, problem, steps, lrs, reference)
    assert tuner.service_state == "local"
    began = time.perf_counter()
    tuner.close()  # one bounded attempt to sync
    assert time.perf_counter() - began < bound + 0.5


def test_a_server_that_hangs_mid_run_costs_bounded_steps_and_catches_up(
    server_factory: Callable[..., ServerProcess],
    sqlite_url: str,
    reference: dict[str, Any],
    quick_resync: None,
) -> None:
    server = server_factory(sqlite_url).start()
    assert server.process is not None
    bound = 0.4
    problem = Problem()
    tuner = AutoLR(
        problem.model, problem.optimizer, server=server.url, step_timeout=bound, **CONFIG
    )
    stopped_at: list[int] = []

    def before(step: int) -> None:
        if step == 100:
            server.process.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
            stopped_at.append(step)
        if step == 500:
            server.process.send_signal(signal.SIGCONT)

    try:
        steps, lrs, longest = _train(tuner, problem, before=before)
    finally:
        server.process.send_signal(signal.SIGCONT)
    assert stopped_at == [100]
    assert longest < bound + DECISION_SLACK_S
    _assert_uninterrupted(tuner, problem, steps, lrs, reference)
    _assert_service_record(tuner)
    tuner.close()


# ------------------------------------------------------------------ resume
def _checkpoint(tuner: AutoLR, problem: Problem) -> dict[str, Any]:
    return {
        "model": problem.weights(),
        "opt": problem.optimizer.state_dict(),
        "tuner": tuner.state_dict(),
    }


def _crash(tuner: AutoLR) -> None:
    """The training process dies: nothing is synced or saved (only its socket is closed)."""
    transport = tuner.transport
    assert transport is not None
    transport.close()


def _restore(ckpt: dict[str, Any], **kwargs: Any) -> tuple[Problem, AutoLR]:
    problem = Problem()
    problem.model.load_state_dict(ckpt["model"])
    problem.optimizer.load_state_dict(ckpt["opt"])
    tuner = AutoLR(problem.model, problem.optimizer, resume=ckpt["tuner"], **kwargs, **CONFIG)
    return problem, tuner


def test_resume_from_a_checkpoint_older_than_the_service_job_follows_its_record(
    server_factory: Callable[..., ServerProcess],
    sqlite_url: str,
    reference: dict[str, Any],
) -> None:
    server = server_factory(sqlite_url).start()
    problem = Problem()
    tuner = AutoLR(problem.model, problem.optimizer, server=server.url, **CONFIG)
    _, first_lrs, _ = _train(tuner, problem, stop=130)  # mid-stage 0 or 1
    ckpt = _checkpoint(tuner, problem)
    _train(tuner, problem, start=130, stop=700)  # the service's job goes on; then a crash
    _crash(tuner)

    problem, resumed = _restore(ckpt, server=server.url)
    steps, lrs, _ = _train(resumed, problem, start=130)
    assert resumed.service_state == "online"
    _assert_uninterrupted(resumed, problem, steps, first_lrs + lrs, reference)
    _assert_service_record(resumed)
    resumed.close()


def test_resume_while_the_service_is_down_goes_on_locally_and_syncs_later(
    server_factory: Callable[..., ServerProcess],
    sqlite_url: str,
    reference: dict[str, Any],
    quick_resync: None,
) -> None:
    server = server_factory(sqlite_url).start()
    problem = Problem()
    tuner = AutoLR(problem.model, problem.optimizer, server=server.url, **CONFIG)
    _, first_lrs, _ = _train(tuner, problem, stop=130)
    ckpt = _checkpoint(tuner, problem)
    _train(tuner, problem, start=130, stop=400)  # the job goes on past the checkpoint
    server.kill()
    _crash(tuner)

    began = time.perf_counter()
    problem, resumed = _restore(ckpt, server=server.url)  # must not raise: the service is down
    assert time.perf_counter() - began < 2.0
    restarted = threading.Event()

    def before(step: int) -> None:
        if step == 600:  # back while the run goes on: it syncs on its clock
            threading.Thread(target=lambda: (server.start(), restarted.set()), daemon=True).start()

    steps, lrs, _ = _train(resumed, problem, start=130, before=before)
    _assert_uninterrupted(resumed, problem, steps, first_lrs + lrs, reference)
    assert restarted.wait(120)
    _assert_service_record(resumed)
    resumed.close()
