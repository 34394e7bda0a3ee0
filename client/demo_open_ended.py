"""Demo: an open-ended run on the digits CNN, with cooldown branches and a budget learned late.

Run ``python -m autolr.client.demo_open_ended``. The run starts without a budget
(``total_steps=None``); at three points of its train segments it branches off a cooled model
(`AutoLR.cooldown`) and measures it; then it learns its budget (`AutoLR.set_total_steps`) and
ends with the final decay at exactly that step. For comparison the same budget, known from the
start, is run too. The README's "Open-ended training" quotes its output.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from autolr.client import AutoLR
from autolr.client.demo import Digits, augment, evaluate, make_cnn

CONFIG: dict[str, Any] = {
    "min_lr": 1e-3,
    "max_lr": 0.5,  # SGD with momentum 0.9: above 0.5 this CNN only diverges
    "tau_min": 100,
    "tau_max": 400,
    "probes_per_stage": 4,
    "initial_probes": 3,
}


def run(
    seed: int, *, branch_at: Sequence[int], branch_steps: int, told_at: int | None, total: int
) -> dict[str, Any]:
    """One run: branches after ``branch_at`` main steps (first train step from there on),
    the budget ``total`` told at main step ``told_at`` (None: known from the start)."""
    torch.manual_seed(seed)
    data = Digits.load(seed)
    model = make_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    budget = None if told_at is not None else total
    tuner = AutoLR(model, optimizer, total_steps=budget, seed=seed, progress=False, **CONFIG)
    gen = torch.Generator().manual_seed(seed)
    branches: list[dict[str, float]] = []
    todo, main = list(branch_at), 0

    def cooled(m: nn.Module) -> None:
        branches[-1]["cooled"], branches[-1]["cooled_acc"] = evaluate(m, data)

    while not tuner.finished:
        if main == told_at and not tuner.in_cooldown and tuner.config.total_steps is None:
            tuner.set_total_steps(total)
        inst = tuner.instruction
        if todo and main >= todo[0] and not tuner.in_cooldown and inst and inst.kind == "train":
            todo.pop(0)
            loss, acc = evaluate(model, data)
            branches.append({"step": main, "lr": tuner.lr, "before": loss, "before_acc": acc})
            tuner.cooldown(branch_steps, cooled)
        idx = torch.randint(0, len(data.y_train), (64,), generator=gen)
        loss_t = nn.functional.cross_entropy(
            model(augment(data.x_train[idx], gen)), data.y_train[idx]
        )
        loss_t.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        optimizer.zero_grad()
        if not tuner.in_cooldown:
            main += 1
        tuner.step(loss_t.detach())
    final, final_acc = evaluate(model, data)
    out = {
        "branches": branches,
        "final": final,
        "final_acc": final_acc,
        "steps": tuner.steps_run,
        "last": tuner.schedule[-1].kind,
    }
    tuner.close()
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--told-at", type=int, default=1500, help="main step of set_total_steps")
    parser.add_argument("--total", type=int, default=3000)
    parser.add_argument("--branch-steps", type=int, default=150)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    late = run(
        args.seed,
        branch_at=(400, 800, 1200),
        branch_steps=args.branch_steps,
        told_at=args.told_at,
        total=args.total,
    )
    for b in late["branches"]:
        print(
            f"branch at main step {b['step']:5.0f} (lr {b['lr']:.3g}): val loss {b['before']:.4f}"
            f" -> cooled {b['cooled']:.4f} (accuracy {b['before_acc']:.3f} -> "
            f"{b['cooled_acc']:.3f})"
        )
    print(
        f"budget {args.total} told at main step {args.told_at}: {late['steps']} steps "
        f"(3 branches included), ends on {late['last']}: val loss {late['final']:.4f}, "
        f"accuracy {late['final_acc']:.3f}"
    )
    known = run(
        args.seed,
        branch_at=(400, 800, 1200),
        branch_steps=args.branch_steps,
        told_at=None,
        total=args.total,
    )
    print(
        f"budget {args.total} known from the start (the same branches): val loss "
        f"{known['final']:.4f}, "
        f"accuracy {known['final_acc']:.3f} ({time.perf_counter() - started:.0f} s in all)"
    )


if __name__ == "__main__":
    main()
