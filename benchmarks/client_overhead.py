"""What the tuner costs a training loop: per-step overhead, and snapshot/restore time and memory.

Usage: ``python benchmarks/client_overhead.py [--json] [--quick]``

1. ``tuner.step(loss)`` on non-boundary steps, with a float and with a 0-dim tensor that
   requires grad, against a bare loop that calls a no-op function with the same argument.
   Both loops run side by side in one process, interleaved, and the median over repeats is
   reported. Target: < 5 µs per step.
2. The stage snapshot of a ~25M-parameter model (a stack of Linear layers) with Adam state:
   `StateSnapshot.save` (first save, which allocates, and later saves, which copy into the same
   buffers) and `StateSnapshot.restore`, against a plain copy (``{k: v.clone()}`` of the model
   and optimizer state). Target: both within 2x of the plain copy. For context it also times
   ``load_state_dict`` of both from such a copy; that is not a full copy: on the CPU
   ``Optimizer.load_state_dict`` adopts the given tensors instead of copying them, so the copy
   is consumed and could not serve the stage's next restore.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from autolr.client import AutoLR, StateSnapshot


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --------------------------------------------------------------------------- per step
def _sink(loss: object) -> None:
    """The bare loop's stand-in for tuner.step: a Python call with the same argument."""


def step_overhead(steps: int, repeats: int) -> dict[str, float]:
    """Median µs per call of ``tuner.step`` minus the bare loop, for float and tensor losses."""
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    weight = torch.ones((), requires_grad=True)
    inputs = {"float": 0.5, "tensor": weight * 0.5}  # the tensor carries an autograd graph
    # one probe far longer than the measurement: every measured step is a non-boundary step
    fields = dict(min_lr=1e-4, max_lr=1.0, tau_min=10**8, tau_max=10**8, total_steps=None)
    out: dict[str, float] = {}
    for name, loss in inputs.items():
        bare, tuned = [], []
        for _ in range(repeats):
            tuner = AutoLR(model, opt, **fields)
            assert tuner.instruction is not None and tuner.instruction.steps > steps
            step = tuner.step
            gc.collect()
            # the garbage collector stays on: the detached tensors it tracks cost real loops too
            t0 = time.perf_counter()
            for _ in range(steps):
                _sink(loss)
            t1 = time.perf_counter()
            for _ in range(steps):
                step(loss)
            t2 = time.perf_counter()
            bare.append((t1 - t0) / steps)
            tuned.append((t2 - t1) / steps)
            tuner.close()
        out[f"step_{name}_us"] = 1e6 * statistics.median(tuned)
        out[f"bare_{name}_us"] = 1e6 * statistics.median(bare)
        out[f"overhead_{name}_us"] = out[f"step_{name}_us"] - out[f"bare_{name}_us"]
    return out


# --------------------------------------------------------------------------- snapshots
def _big_model(width: int, layers: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, width)).sum().backward()
    opt.step()  # Adam state exists: exp_avg and exp_avg_sq per parameter
    opt.zero_grad()
    return model, opt


def _plain_copy(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """What a user would write: clone every tensor of both state_dicts."""
    osd = opt.state_dict()
    return {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "opt": {
            "state": {
                i: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
                for i, s in osd["state"].items()
            },
            "param_groups": copy.deepcopy(osd["param_groups"]),
        },
    }


def _nbytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    return 0


def snapshot_costs(width: int, layers: int, repeats: int) -> dict[str, float]:
    """Seconds and bytes of snapshot save/restore against plain copies, for each mode."""
    model, opt = _big_model(width, layers)
    params = sum(p.numel() for p in model.parameters())
    out: dict[str, float] = {"params_millions": params / 1e6}

    holder: dict[str, Any] = {}

    def plain_save() -> None:
        holder["copy"] = None  # free the previous copy first, as a snapshot would reuse it
        holder["copy"] = _plain_copy(model, opt)

    out["plain_copy_s"] = _median_time(plain_save, repeats)
    out["plain_copy_mb"] = _nbytes(holder["copy"]) / 2**20

    def plain_restore() -> None:
        model.load_state_dict(holder["copy"]["model"])
        opt.load_state_dict(copy.copy(holder["copy"]["opt"]))

    out["plain_restore_s"] = _median_time(plain_restore, repeats)
    holder.clear()
    model, opt = _big_model(width, layers)  # load_state_dict may alias: start clean
    gc.collect()

    for mode in ("cpu", "same"):
        snap = StateSnapshot(model, opt, device=mode)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        snap.save()
        out[f"{mode}_first_save_s"] = time.perf_counter() - t0
        out[f"{mode}_save_s"] = _median_time(snap.save, repeats)
        out[f"{mode}_restore_s"] = _median_time(snap.restore, repeats)
        out[f"{mode}_snapshot_mb"] = snap.nbytes / 2**20
        snap.close()
    return out


# --------------------------------------------------------------------------- report
def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        step_n, step_reps, width, layers, reps = 2_000, 3, 256, 2, 2
    else:
        step_n, step_reps, width, layers, reps = 50_000, 9, 2048, 6, 5
    res = step_overhead(step_n, step_reps)
    res.update(snapshot_costs(width, layers, reps))
    res["save_vs_plain"] = res["cpu_save_s"] / res["plain_copy_s"]
    res["first_save_vs_plain"] = res["cpu_first_save_s"] / res["plain_copy_s"]
    res["restore_vs_plain"] = res["cpu_restore_s"] / res["plain_copy_s"]
    res["restore_vs_load_state_dict"] = res["cpu_restore_s"] / res["plain_restore_s"]
    if args.json:
        print(json.dumps(res, indent=2))
        return res
    rows = [
        (
            "tuner.step(float), non-boundary",
            f"{res['step_float_us']:.2f} µs",
            f"bare {res['bare_float_us']:.2f} µs, overhead {res['overhead_float_us']:.2f} µs",
        ),
        (
            "tuner.step(tensor), non-boundary",
            f"{res['step_tensor_us']:.2f} µs",
            f"bare {res['bare_tensor_us']:.2f} µs, overhead {res['overhead_tensor_us']:.2f} µs",
        ),
        (
            f"plain copy ({res['params_millions']:.1f}M params + Adam)",
            f"{1e3 * res['plain_copy_s']:.0f} ms",
            f"{res['plain_copy_mb']:.0f} MiB",
        ),
        (
            "snapshot save, cpu (first: allocates)",
            f"{1e3 * res['cpu_first_save_s']:.0f} ms",
            f"{res['first_save_vs_plain']:.2f}x plain",
        ),
        (
            "snapshot save, cpu (later: reuses buffers)",
            f"{1e3 * res['cpu_save_s']:.0f} ms",
            f"{res['save_vs_plain']:.2f}x plain, {res['cpu_snapshot_mb']:.0f} MiB held",
        ),
        (
            "snapshot restore, cpu",
            f"{1e3 * res['cpu_restore_s']:.0f} ms",
            f"{res['restore_vs_plain']:.2f}x plain copy",
        ),
        (
            "load_state_dict x2 (adopts Adam state: no copy)",
            f"{1e3 * res['plain_restore_s']:.0f} ms",
            f"snapshot restore is {res['restore_vs_load_state_dict']:.2f}x this",
        ),
        (
            "snapshot save / restore, same device",
            f"{1e3 * res['same_save_s']:.0f} ms / {1e3 * res['same_restore_s']:.0f} ms",
            f"{res['same_snapshot_mb']:.0f} MiB held",
        ),
    ]
    width_name = max(len(r[0]) for r in rows)
    width_val = max(len(r[1]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width_name}}  {value:>{width_val}}  {note}")
    return res


if __name__ == "__main__":
    main()
