"""CPU benchmark tasks for the schedule-quality benchmark.

Each task is deterministic under a seed, downloads nothing and is sized so one run takes roughly
10 s on one CPU thread at ``scale=1`` (``scale`` multiplies the step budget). ``make(seed)``
returns a `Setup`:

- ``model``: a freshly initialized ``torch.nn.Module`` (seeded),
- ``optimizer(lr, schedulefree=False, warmup_steps=0)``: builds the task's optimizer over the
  model's parameter groups with peak LR ``lr`` (the Schedule-Free variant when asked),
- ``batches``: an infinite iterator of ``(inputs, targets)`` (seeded, independent of the model),
- ``loss(model, batch)``: the training loss (a 0-dim tensor),
- ``val_loss(model)``: the validation loss on a fixed set (a float; eval mode, no grad).

The validation set and (for the regression task) the teacher do not depend on the seed: the seed
varies initialization and data order only, so seeds measure optimization noise.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Setup:
    model: nn.Module
    optimizer: Callable[..., torch.optim.Optimizer]
    batches: Iterator[Batch]
    loss: Callable[[nn.Module, Batch], torch.Tensor]
    val_loss: Callable[[nn.Module], float]


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    steps: int  # step budget at scale 1
    lr_center: float  # middle of the 7-point log grid
    grid_factor: float  # ratio between neighbouring grid points
    make: Callable[[int], Setup]

    def budget(self, scale: float) -> int:
        return max(1, round(self.steps * scale))

    def grid(self, points: int = 7) -> list[float]:
        half = points // 2
        return [
            float(f"{self.lr_center * self.grid_factor ** (i - half):.3g}") for i in range(points)
        ]


def _evaluate(model: nn.Module, fn: Callable[[], torch.Tensor]) -> float:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            value = float(fn())
    finally:
        model.train(was_training)
    return value if math.isfinite(value) else float("nan")


# --------------------------------------------------------------------------------------------
# 1. digits: a small CNN on scikit-learn's bundled 8x8 digits, SGD + momentum 0.9
# --------------------------------------------------------------------------------------------

_DIGITS: dict[str, torch.Tensor] = {}


def _digits_data() -> dict[str, torch.Tensor]:
    if not _DIGITS:
        from sklearn.datasets import load_digits

        data = load_digits()
        x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
        x = (x - 0.3) / 0.4
        y = torch.tensor(data.target, dtype=torch.long)
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))
        n_val = 450
        _DIGITS.update(
            x_val=x[perm[:n_val]],
            y_val=y[perm[:n_val]],
            x_train=x[perm[n_val:]],
            y_train=y[perm[n_val:]],
        )
    return _DIGITS


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def _epoch_batches(x: torch.Tensor, y: torch.Tensor, batch: int, seed: int) -> Iterator[Batch]:
    """Shuffled epochs; each image randomly shifted by up to one pixel (augmentation)."""
    gen = torch.Generator().manual_seed(seed)
    padded = F.pad(x, (1, 1, 1, 1), value=float(x.min()))
    while True:
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y) - batch + 1, batch):
            idx = perm[i : i + batch]
            shifts = torch.randint(0, 3, (batch, 2), generator=gen).tolist()
            xb = torch.stack(
                [
                    padded[j, :, a : a + 8, b : b + 8]
                    for j, (a, b) in zip(idx.tolist(), shifts, strict=True)
                ]
            )
            yield xb, y[idx]


def make_digits(seed: int) -> Setup:
    d = _digits_data()
    torch.manual_seed(seed)
    model = DigitsCNN()

    def optimizer(
        lr: float, schedulefree: bool = False, warmup_steps: int = 0
    ) -> torch.optim.Optimizer:
        if schedulefree:
            import schedulefree as sf

            return sf.SGDScheduleFree(
                model.parameters(),
                lr=lr,
                momentum=0.9,
                weight_decay=5e-4,
                warmup_steps=warmup_steps,
            )
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)

    def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(m(batch[0]), batch[1])

    def val_loss(m: nn.Module) -> float:
        return _evaluate(m, lambda: F.cross_entropy(m(d["x_val"]), d["y_val"]))

    return Setup(
        model, optimizer, _epoch_batches(d["x_train"], d["y_train"], 32, seed + 1), loss, val_loss
    )


# --------------------------------------------------------------------------------------------
# 2. teacher: student-teacher MLP regression, Adam, fresh noisy batches every step
# --------------------------------------------------------------------------------------------

_DIM = 32


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


_TEACHER: dict[str, Any] = {}


def _teacher() -> dict[str, Any]:
    if not _TEACHER:
        torch.manual_seed(4321)
        teacher = _mlp([_DIM, 64, 64, 1])
        for p in teacher.parameters():
            p.requires_grad_(False)
        gen = torch.Generator().manual_seed(8765)
        x_val = torch.randn(4096, _DIM, generator=gen)
        with torch.no_grad():
            teacher[0].weight.mul_(3.0)  # saturating tanh units: a strongly nonlinear target
            teacher[2].weight.mul_(2.0)
            teacher[-1].weight.div_(teacher(x_val).std())  # targets of unit variance
            teacher[-1].bias.zero_()
            y_val = teacher(x_val)
        _TEACHER.update(teacher=teacher, x_val=x_val, y_val=y_val)
    return _TEACHER


def make_teacher(seed: int) -> Setup:
    t = _teacher()
    torch.manual_seed(seed)
    model = _mlp([_DIM, 128, 128, 1])

    def optimizer(
        lr: float, schedulefree: bool = False, warmup_steps: int = 0
    ) -> torch.optim.Optimizer:
        if schedulefree:
            import schedulefree as sf

            return sf.AdamWScheduleFree(model.parameters(), lr=lr, warmup_steps=warmup_steps)
        return torch.optim.Adam(model.parameters(), lr=lr)

    def batches() -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(seed + 1)
        teacher = t["teacher"]
        while True:
            x = torch.randn(64, _DIM, generator=gen)
            with torch.no_grad():
                y = teacher(x) + 0.3 * torch.randn(64, 1, generator=gen)  # label noise
            yield x, y

    def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        return F.mse_loss(m(batch[0]), batch[1])

    def val_loss(m: nn.Module) -> float:
        return _evaluate(m, lambda: F.mse_loss(m(t["x_val"]), t["y_val"]))

    return Setup(model, optimizer, batches(), loss, val_loss)


# --------------------------------------------------------------------------------------------
# 3. charlm: a small character-level transformer LM on Python stdlib source, AdamW
# --------------------------------------------------------------------------------------------

_CORPUS_MODULES = (
    "textwrap",
    "string",
    "heapq",
    "bisect",
    "fnmatch",
    "shlex",
    "colorsys",
    "calendar",
    "difflib",
)
_CTX = 32
_TEXT: dict[str, torch.Tensor] = {}


def _corpus() -> dict[str, torch.Tensor]:
    if not _TEXT:
        import importlib

        text = "\n".join(inspect.getsource(importlib.import_module(m)) for m in _CORPUS_MODULES)
        codes = torch.tensor([min(ord(c), 127) for c in text], dtype=torch.long)
        n_val = len(codes) // 10
        train, val = codes[:-n_val], codes[-n_val:]
        # fixed validation set: 48 windows spread evenly over the held-out tail
        starts = torch.linspace(0, len(val) - _CTX - 2, 48).long()
        xv = torch.stack([val[s : s + _CTX] for s in starts])
        yv = torch.stack([val[s + 1 : s + _CTX + 1] for s in starts])
        _TEXT.update(train=train, x_val=xv, y_val=yv)
    return _TEXT


class Block(nn.Module):
    """Pre-norm transformer block (causal self-attention + GELU MLP)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (
            self.qkv(self.norm1(x))
            .view(b, t, 3, self.heads, d // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.norm2(x))))


class CharTransformer(nn.Module):
    def __init__(self, vocab: int = 128, d: int = 48, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.zeros(_CTX, d))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*[Block(d, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.tok(idx) + self.pos[: idx.shape[1]]
        return self.head(self.norm(self.blocks(h)))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or name.startswith("pos") or "norm" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_charlm(seed: int) -> Setup:
    c = _corpus()
    torch.manual_seed(seed)
    model = CharTransformer()

    def optimizer(
        lr: float, schedulefree: bool = False, warmup_steps: int = 0
    ) -> torch.optim.Optimizer:
        groups = _param_groups(model, 0.1)
        if schedulefree:
            import schedulefree as sf

            return sf.AdamWScheduleFree(groups, lr=lr, betas=(0.9, 0.99), warmup_steps=warmup_steps)
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99))

    def batches() -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(seed + 1)
        train = c["train"]
        while True:
            starts = torch.randint(0, len(train) - _CTX - 1, (16,), generator=gen)
            x = torch.stack([train[s : s + _CTX] for s in starts])
            y = torch.stack([train[s + 1 : s + _CTX + 1] for s in starts])
            yield x, y

    def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        logits = m(batch[0])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[1].reshape(-1))

    def val_loss(m: nn.Module) -> float:
        return _evaluate(m, lambda: loss(m, (c["x_val"], c["y_val"])))

    return Setup(model, optimizer, batches(), loss, val_loss)


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "digits",
            "CNN (2 conv + 2 fc, 38k params) on sklearn digits 8x8 (1347 train, random 1-pixel "
            "shifts), batch 32, "
            "SGD momentum 0.9, wd 5e-4; val = cross-entropy on 450 held-out images",
            steps=2000,
            lr_center=0.01,
            grid_factor=3.0,
            make=make_digits,
        ),
        Task(
            "teacher",
            "student MLP 32-128-128-1 fits a fixed random tanh teacher MLP, "
            "Gaussian inputs, fresh batches of 64 with label noise 0.3 (unit-variance targets), Adam; val = MSE on "
            "4096 noise-free points",
            steps=4000,
            lr_center=2e-3,
            grid_factor=3.0,
            make=make_teacher,
        ),
        Task(
            "charlm",
            "char-level transformer LM (2 pre-norm layers, d=48, 4 heads, ctx 32, 70k params) on "
            "Python stdlib source, batch 16, AdamW wd 0.1 with a no-decay group for "
            "biases/norms/positions; val = cross-entropy (nats/char) on 48 held-out windows",
            steps=1500,
            lr_center=3e-3,
            grid_factor=3.0,
            make=make_charlm,
        ),
    )
}
