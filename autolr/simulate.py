"""A noisy quadratic model (NQM): loss curves in closed form, for testing tuners without training.

SGD on a quadratic ``L(w) = ½ Σ h_i w_i²`` with gradient noise of variance ``c_i`` per
coordinate has an exact expected loss. For coordinate i the second moment ``m_i = E[w_i²]``
evolves as ``m ← r·m + η²·c_i`` with ``r = (1 − η h_i)²``, so after t steps at a constant LR η

    m_i(t) = r^t m_i(0) + (1 − r^t) · η² c_i / (1 − r)        (r < 1)

and ``E[L] = ½ Σ h_i m_i``. Large LRs make progress fast but sit on a high noise floor; small
LRs have a low floor but converge slowly, so the best LR for a horizon of τ steps shrinks as
training goes on, which is exactly the trade-off AutoLRS searches. Wang et al. / Zhang et al.
(2019) used the same model to study batch sizes and schedules.

The oracle (`best_lr`) evaluates the closed form over a fine LR grid, which lets tests measure
how close a tuner's choices get to the best possible greedy choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from autolr.protocol import Instruction, Report

if TYPE_CHECKING:
    from autolr.controller import Controller

FloatArray = npt.NDArray[np.float64]


@dataclass
class NoisyQuadratic:
    """The NQM state plus a seeded observation noise on reported losses.

    Args:
        dims: number of coordinates.
        h_min, h_max: the curvature spectrum, log-spaced.
        noise: gradient-noise scale (``c_i = noise · h_i``).
        obs_noise: relative Gaussian noise added to each reported loss (mini-batch noise).
        seed: seed of the observation noise.
    """

    dims: int = 32
    h_min: float = 1e-3
    h_max: float = 1.0
    noise: float = 1e-2
    obs_noise: float = 0.02
    seed: int = 0
    h: FloatArray = field(init=False)
    c: FloatArray = field(init=False)
    m: FloatArray = field(init=False)
    snapshot_m: FloatArray = field(init=False)
    best_m: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        self.h = np.logspace(np.log10(self.h_min), np.log10(self.h_max), self.dims)
        self.c = self.noise * self.h
        self.m = np.ones(self.dims)
        self.snapshot_m = self.m.copy()
        self.best_m = self.m.copy()
        self._rng = np.random.default_rng(self.seed)

    def expected_loss(self, m: FloatArray | None = None) -> float:
        """½ Σ h_i m_i for the current (or given) second moments."""
        return float(0.5 * np.dot(self.h, self.m if m is None else m))

    def _advance(self, m: FloatArray, lr: float, steps: int) -> FloatArray:
        r = (1.0 - lr * self.h) ** 2
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            floor = np.where(r < 1.0, lr**2 * self.c / np.maximum(1.0 - r, 1e-300), np.inf)
            rt = r ** float(steps)
            out = np.where(r < 1.0, rt * m + (1.0 - rt) * floor, rt * m + steps * lr**2 * self.c)
        return np.asarray(out, dtype=np.float64)

    def loss_after(self, lr: float, steps: int, m: FloatArray | None = None) -> float:
        """Expected loss after ``steps`` steps at ``lr`` from ``m`` (default: the current state)."""
        return self.expected_loss(self._advance(self.m if m is None else m, lr, steps))

    def run(
        self, lr: float, lr_end: float, steps: int, eval_every: int | None = None
    ) -> tuple[list[float], list[tuple[int, float]]]:
        """Train ``steps`` steps (LR ramping linearly).

        Returns:
            The noisy per-step training losses, and ``(step, loss)`` validation pairs (the
            noise-free expected loss) every ``eval_every`` steps.
        """
        losses: list[float] = []
        val: list[tuple[int, float]] = []
        for i in range(steps):
            frac = i / (steps - 1) if steps > 1 else 0.0
            self.m = self._advance(self.m, lr + (lr_end - lr) * frac, 1)
            true = self.expected_loss()
            noisy = true * (1.0 + self.obs_noise * self._rng.standard_normal())
            losses.append(float(noisy) if np.isfinite(true) else float("nan"))
            if eval_every and (i + 1) % eval_every == 0:
                val.append((i + 1, true if np.isfinite(true) else float("nan")))
        return losses, val

    def best_lr(
        self,
        horizon: int,
        min_lr: float,
        max_lr: float,
        points: int = 400,
        m: FloatArray | None = None,
    ) -> float:
        """The LR minimizing the expected loss after ``horizon`` steps from ``m`` (or now)."""
        grid = np.logspace(np.log10(min_lr), np.log10(max_lr), points)
        losses = np.array([self.loss_after(float(lr), horizon, m) for lr in grid])
        losses[~np.isfinite(losses)] = np.inf
        return float(grid[int(np.argmin(losses))])

    def follow(self, instruction: Instruction) -> Report:
        """Carry out one instruction as a client would, and report its losses."""
        if instruction.save_best:
            self.best_m = self.m.copy()
        if instruction.restore:
            self.m = self.snapshot_m.copy()
        if instruction.restore_best:
            self.m = self.best_m.copy()
        if instruction.snapshot:
            self.snapshot_m = self.m.copy()
        losses, val = self.run(
            instruction.lr, instruction.lr_end, instruction.steps, instruction.eval_every
        )
        return Report(
            segment=instruction.segment, train_losses=losses, val_losses=val, kind=instruction.kind
        )


def run_job(controller: Controller, model: NoisyQuadratic, max_segments: int = 100_000) -> None:
    """Drive ``controller`` from `start` to ``finished`` against ``model``."""
    instruction = controller.start()
    for _ in range(max_segments):
        if instruction.finished:
            return
        instruction = controller.report(model.follow(instruction))
    raise RuntimeError(f"job did not finish within {max_segments} segments")
