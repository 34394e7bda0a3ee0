"""The client's CUDA paths, checked on a GPU: device snapshots, tensor losses without host syncs.

    python benchmarks/cuda_paths.py            # needs a CUDA device; exits 1 if a check fails

Checks (each prints PASS/FAIL):
1. ``tuner.step(loss_tensor)`` never synchronizes with the host between segment boundaries
   (``torch.cuda.set_sync_debug_mode("error")`` around every such call).
2. With ``snapshot_device="same"`` the snapshot's buffers live on the GPU; with ``"cpu"`` in host
   memory. Either way every probe and the train segment start bit-identical to the stage's
   snapshot (parameters compared on the device).
3. A whole embedded job finishes on budget with finite weights.
Figures (medians over repeats, side by side in one run): per-step cost of ``tuner.step`` with a
CUDA tensor loss, and snapshot save/restore time for a ~100M-parameter model + AdamW state,
``"same"`` vs ``"cpu"`` vs a plain ``clone()`` of the same tensors.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from torch import nn

from autolr.client import AutoLR
from autolr.client._snapshot import StateSnapshot

FAILED: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}{'  (' + detail + ')' if detail else ''}", flush=True)
    if not ok:
        FAILED.append(name)


def mlp(width: int, depth: int) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.GELU()]
    return nn.Sequential(*layers, nn.Linear(width, 1))


def job(snapshot_device: str) -> None:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = mlp(256, 3).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(4096, 256, device=dev)
    y = x[:, :1].sin() + 0.1 * torch.randn(4096, 1, device=dev)
    tuner = AutoLR(
        model,
        opt,
        min_lr=1e-5,
        max_lr=1e-1,
        total_steps=1200,
        seed=0,
        snapshot_device=snapshot_device,  # type: ignore[arg-type]
        strict=True,
    )
    starts: dict[int, list[torch.Tensor]] = {}
    synced_steps, guarded = 0, 0
    step = 0
    while not tuner.finished:
        inst = tuner.instruction
        assert inst is not None
        if tuner.segment_step == 0:
            starts[inst.segment] = [p.detach().clone() for p in model.parameters()]
        idx = torch.randint(0, 4096, (128,), device=dev)
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        boundary = tuner.segment_step + 1 >= inst.steps
        if boundary:
            tuner.step(loss.detach())
        else:
            guarded += 1
            torch.cuda.set_sync_debug_mode("error")
            try:
                tuner.step(loss.detach())
            except RuntimeError as exc:  # a host sync inside the hot path
                synced_steps += 1
                if synced_steps == 1:
                    print(f"      first sync: {exc}", flush=True)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        step += 1
    check(
        f"[{snapshot_device}] no host sync in tuner.step between boundaries",
        synced_steps == 0,
        f"{guarded} guarded steps, {synced_steps} synced",
    )
    buffers = tuner._snapshot._buffers
    devices = {t.device.type for t in buffers["model"].values()} if buffers else set()
    expected = "cuda" if snapshot_device == "same" else "cpu"
    check(
        f"[{snapshot_device}] snapshot buffers on {expected}", devices == {expected}, str(devices)
    )
    # every later probe and the train segment of a stage start from the stage's snapshot (a
    # later chunk of a long train segment snapshots where it starts; a rollback returns there)
    mismatches, compared = 0, 0
    by_stage: dict[int, list] = {}
    for seg in tuner.transport.controller.schedule:  # the instructions, restore flags included
        by_stage.setdefault(seg.stage, []).append(seg)
    for segs in by_stage.values():
        snap = segs[0]
        for seg in segs[1:]:
            if seg.snapshot and not seg.restore:
                snap = seg
            elif seg.kind == "probe" or (seg.kind == "train" and seg.restore):
                compared += 1
                same = all(
                    torch.equal(a, b)
                    for a, b in zip(starts[snap.segment], starts[seg.segment], strict=True)
                )
                mismatches += not same
    check(
        f"[{snapshot_device}] restores are bit-identical to the stage snapshot",
        compared > 0 and mismatches == 0,
        f"{compared} restores compared",
    )
    finite = all(torch.isfinite(p).all() for p in model.parameters())
    check(
        f"[{snapshot_device}] job finished on budget, finite weights",
        tuner.steps_run == 1200 and bool(finite),
    )


def step_overhead() -> None:
    dev = torch.device("cuda")
    model = nn.Linear(8, 1).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    tuner = AutoLR(model, opt, total_steps=10**7, probe_budget=None, strict=True)
    loss = torch.ones((), device=dev)
    for _ in range(50):  # first segment: tau_min=1000-ish steps, far from a boundary
        tuner.step(loss)
    samples = []
    for _ in range(7):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(200):
            tuner.step(loss)
        samples.append((time.perf_counter() - t0) / 200 * 1e6)
    print(
        f"tuner.step(cuda tensor): median {statistics.median(samples):.2f} µs per step (host time)"
    )


def snapshot_timing() -> None:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = mlp(4096, 6).to(dev)  # ~100M parameters
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(8, 4096, device=dev)).sum().backward()
    opt.step()  # AdamW state exists
    n = sum(p.numel() for p in model.parameters())
    tensors = [p.detach() for p in model.parameters()] + [
        v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)
    ]
    gib = sum(t.numel() * t.element_size() for t in tensors) / 2**30

    def timed(fn) -> float:
        out = []
        for _ in range(5):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            out.append(time.perf_counter() - t0)
        return statistics.median(out) * 1e3

    clone_ms = timed(lambda: [t.clone() for t in tensors])
    print(
        f"snapshot of {n / 1e6:.0f}M params + AdamW ({gib:.2f} GiB); plain clone on GPU {clone_ms:.1f} ms"
    )
    for device in ("same", "cpu"):
        snap = StateSnapshot(model, opt, device=device)  # type: ignore[arg-type]
        snap.save()  # allocate once
        save_ms = timed(snap.save)
        restore_ms = timed(snap.restore)
        # host time of a save alone: with pinned buffers the copy runs behind the host
        t0 = time.perf_counter()
        snap.save()
        host_ms = (time.perf_counter() - t0) * 1e3
        # the checkpoint copy waits for the (possibly still running) snapshot copy
        with torch.no_grad():
            first = next(model.parameters())
            first.add_(1.0)
            snap.save()
            expected = first.detach().cpu()
            first.sub_(5.0)
            saved = snap.state_dict()["model"]  # type: ignore[index]
        key = next(k for k in saved if k.startswith("p:"))
        check(
            f"[{device}] state_dict right after save holds the saved values",
            torch.equal(saved[key], expected),
        )
        snap.restore()
        check(
            f"[{device}] restore brings the saved values back", torch.equal(first.cpu(), expected)
        )
        print(
            f"  snapshot_device={device!r}: save {save_ms:.1f} ms ({save_ms / clone_ms:.2f}x "
            f"clone; host returns after {host_ms:.1f} ms), restore {restore_ms:.1f} ms "
            f"({restore_ms / clone_ms:.2f}x clone)"
        )


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to check (run this on a GPU machine)")
        return 0
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    for device in ("same", "cpu"):
        job(device)
    step_overhead()
    snapshot_timing()
    print("all checks passed" if not FAILED else f"FAILED: {FAILED}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
