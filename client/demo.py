"""Demo: AutoLRS tunes SGD's learning rate for a small CNN on scikit-learn's digits.

Run ``python -m autolr.client.demo --out demo_schedule.png`` (``make demo``). Everything is
local: the 8x8 digits ship with scikit-learn, the controller runs in this process (embedded
mode), and a run takes about a minute on two CPU cores. It prints one line per stage (τ, the
probed LRs with their forecast losses, the chosen LR, the validation loss after the stage's
training), then a summary, and draws the LR schedule and the loss curves into a PNG.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from autolr.client import AutoLR, LocalTransport, Segment


@dataclass
class Digits:
    """The digits split once into train and validation tensors (pixels standardized)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @classmethod
    def load(cls, seed: int) -> Digits:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
        x = (x - x.mean()) / x.std()
        y = torch.tensor(bunch.target, dtype=torch.long)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
        n_val = len(y) // 5
        val, train = order[:n_val], order[n_val:]
        return cls(x[train], y[train], x[val], y[val])


def make_cnn() -> nn.Module:
    """Two 3x3 convolutions with batch norm and a small classifier head: about 40k parameters."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift the batch by up to one pixel and add pixel noise.

    Without it the CNN drives the training loss on 1,437 digits to 1e-4 within a few hundred
    steps, and there is nothing left for a learning-rate schedule to do.
    """
    dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
    shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    return shifted + 0.15 * torch.randn(x.shape, generator=gen)


def evaluate(model: nn.Module, data: Digits) -> tuple[float, float]:
    """Validation loss and accuracy (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(data.x_val)
        loss = nn.functional.cross_entropy(logits, data.y_val).item()
        acc = (logits.argmax(1) == data.y_val).float().mean().item()
    model.train(was_training)
    return loss, acc


@dataclass
class History:
    """What the plot needs: per-step LR, kind and loss, and validation points."""

    lrs: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    losses: list[torch.Tensor] = field(default_factory=list)
    val: list[tuple[int, float]] = field(default_factory=list)


def _stage_line(tuner: AutoLR, seg: Segment, val_loss: float) -> str:
    """One printed line for the stage whose train segment ``seg`` just ended."""
    probes, tau = "", seg.steps
    transport = tuner.transport
    if isinstance(transport, LocalTransport):
        record = next(s for s in transport.controller.stages if s.stage == seg.stage)
        probes = "  ".join(
            f"{p.lr:.2e}->{p.forecast:.3f}" if p.forecast is not None else f"{p.lr:.2e}->diverged"
            for p in record.probes
        )
        tau = record.tau
    rolled_back = ""
    if isinstance(transport, LocalTransport) and seg.lr in record.diverged_lrs:
        rolled_back = "  diverged: rolled back to the stage snapshot"
    return (
        f"stage {seg.stage:2d}  tau={tau:5d}  probes [{probes}]  "
        f"chosen lr={seg.lr:.3e}  val loss={val_loss:.4f}{rolled_back}"
    )


def train(
    steps: int, seed: int, *, probes: int, batch_size: int = 64, quiet: bool = False
) -> tuple[AutoLR, nn.Module, Digits, History]:
    """Train the CNN under AutoLR until its budget of ``steps`` (search included) is spent."""
    torch.manual_seed(seed)
    data = Digits.load(seed)
    model = make_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    tuner = AutoLR(
        model,
        optimizer,
        val_fn=lambda: nn.functional.cross_entropy(model(data.x_val), data.y_val),
        # SGD with momentum 0.9 multiplies the step by ~10: above 0.5 this CNN only diverges
        min_lr=1e-3,
        max_lr=0.5,
        total_steps=steps,
        probes_per_stage=probes,
        initial_probes=min(3, probes),
        seed=seed,
        progress=False,  # the demo prints its own lines, with the validation loss
    )
    hist = History()
    gen = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    order = torch.randperm(n, generator=gen)
    cursor = 0
    done = 0
    while not tuner.finished:
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=gen), 0
        idx = order[cursor : cursor + batch_size]
        cursor += batch_size
        xb = augment(data.x_train[idx], gen)
        hist.lrs.append(optimizer.param_groups[0]["lr"])
        hist.kinds.append(tuner.instruction.kind if tuner.instruction else "train")
        loss = nn.functional.cross_entropy(model(xb), data.y_train[idx])
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        optimizer.zero_grad()
        hist.losses.append(loss.detach())
        tuner.step(loss)
        schedule = tuner.schedule
        if len(schedule) > done:
            done = len(schedule)
            seg = schedule[-1]
            nxt = tuner.instruction
            more = (  # the stage trains on in a further chunk: one line per stage
                nxt is not None and nxt.kind == "train" and nxt.stage == seg.stage
            ) and not nxt.restore
            if seg.kind == "train" and seg.steps > 0 and not more:
                val_loss, _ = evaluate(model, data)
                hist.val.append((len(hist.lrs), val_loss))
                if not quiet:
                    print(_stage_line(tuner, seg, val_loss), flush=True)
    return tuner, model, data, hist


def plot(hist: History, out: str) -> None:
    """LR schedule (top) and train/validation loss (bottom); probe steps drawn in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = torch.stack(hist.losses).tolist() if hist.losses else []
    steps = range(1, len(hist.lrs) + 1)
    fig, (ax_lr, ax_loss) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for kind, color in (
        ("probe", "0.7"),
        ("warmup", "tab:green"),
        ("train", "tab:blue"),
        ("anneal", "tab:purple"),
    ):
        xs = [s for s, k in zip(steps, hist.kinds, strict=True) if k == kind]
        if not xs:
            continue
        ax_lr.scatter(xs, [hist.lrs[s - 1] for s in xs], s=2, color=color, label=kind)
        ax_loss.scatter(xs, [losses[s - 1] for s in xs], s=2, color=color, label=f"train ({kind})")
    if hist.val:
        ax_loss.plot(*zip(*hist.val, strict=True), "o-", ms=4, color="tab:red", label="validation")
    finite = [v for v in losses if math.isfinite(v)]
    if finite:  # diverging probes would stretch the axis over many decades
        ax_loss.set_ylim(min(finite) * 0.8, max(finite[:50]) * 3)
    ax_lr.set_yscale("log")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title("AutoLRS on digits: LR schedule (grey: probes, from the stage snapshot)")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("optimizer step (search included)")
    ax_loss.set_ylabel("cross-entropy loss")
    for ax, where in ((ax_lr, "lower left"), (ax_loss, "upper right")):
        legend = ax.legend(loc=where)
        for handle in legend.legend_handles:
            if hasattr(handle, "set_sizes"):
                handle.set_sizes([20])
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the demo; return its summary (also printed)."""
    parser = argparse.ArgumentParser(prog="python -m autolr.client.demo", description=__doc__)
    parser.add_argument("--out", default="demo_schedule.png", help="PNG to write")
    parser.add_argument("--steps", type=int, default=4000, help="budget, probes included")
    parser.add_argument("--probes", type=int, default=6, help="probes per stage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("autolr").setLevel(logging.WARNING)  # the demo prints its own lines

    start = time.perf_counter()
    print(f"AutoLRS demo: small CNN on digits, SGD+momentum, budget {args.steps} steps")
    tuner, model, data, hist = train(args.steps, args.seed, probes=args.probes)
    val_loss, val_acc = evaluate(model, data)
    schedule = tuner.schedule
    total = tuner.steps_run
    probing = sum(s.steps for s in schedule if s.kind == "probe")
    plot(hist, args.out)
    seconds = time.perf_counter() - start
    summary = {
        "val_loss": val_loss,
        "val_accuracy": val_acc,
        "total_steps": total,
        "probe_steps": probing,
        "stages": len({s.stage for s in schedule}),
        "seconds": seconds,
        "out": args.out,
    }
    print(
        f"final: val loss {val_loss:.4f}, val accuracy {100 * val_acc:.1f}%, "
        f"{total} steps ({probing} probing, {100 * probing / max(total, 1):.0f}%), "
        f"{summary['stages']} stages, {seconds:.0f}s; schedule plot -> {args.out}"
    )
    tuner.close()
    if not math.isfinite(val_loss):
        raise SystemExit("the demo diverged")
    return summary


if __name__ == "__main__":
    main()
