"""CPU benchmark tasks for the schedule-quality benchmark.

Ten tasks of different character (see ``TASKS``), split once into tuning and held-out tasks
(``TUNING``, ``HELD_OUT`` at the bottom). Each task is deterministic under a seed, downloads
nothing and is sized so one run takes 0.3-2 s (new tasks) to ~10 s (digits, teacher, charlm) on
one CPU thread at ``scale=1`` (``scale`` multiplies the step budget). ``make(seed)`` returns a
`Setup`:

- ``model``: a freshly initialized ``torch.nn.Module`` (seeded),
- ``optimizer(lr, schedulefree=False, warmup_steps=0)``: builds the task's optimizer over the
  model's parameter groups with peak LR ``lr`` (the Schedule-Free variant when asked),
- ``batches``: an infinite iterator of ``(inputs, targets)`` (seeded, independent of the model),
- ``loss(model, batch)``: the training loss (a 0-dim tensor),
- ``val_loss(model)``: the validation loss on a fixed set (a float; eval mode, no grad).

Validation sets, datasets, teachers and the pre-trained weights of ``continued`` do not depend on
the seed: the seed varies initialization (the initial θ for ``nqm``; nothing for ``continued``)
and data order (or the fresh samples drawn) only, so seeds measure optimization noise.
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
    #: autolr searches [grid[0] / autolr_min_factor, grid[-1] * autolr_max_factor]
    autolr_min_factor: float = 10.0
    autolr_max_factor: float = 10.0

    def budget(self, scale: float) -> int:
        return max(1, round(self.steps * scale))

    def grid(self, points: int = 7) -> list[float]:
        half = points // 2
        return [
            float(f"{self.lr_center * self.grid_factor ** (i - half):.3g}") for i in range(points)
        ]

    def autolr_range(self) -> tuple[float, float]:
        """(min_lr, max_lr) autolr searches: by default one decade beyond the grid each side."""
        grid = self.grid()
        return grid[0] / self.autolr_min_factor, grid[-1] * self.autolr_max_factor


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


# --------------------------------------------------------------------------------------------
# helpers for the tasks below
# --------------------------------------------------------------------------------------------


def _sgd_or_sf(
    params: Any,
    lr: float,
    schedulefree: bool,
    warmup_steps: int,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    if schedulefree:
        import schedulefree as sf

        # Schedule-Free's own interpolation plays momentum's part; 0.9 is its default
        return sf.SGDScheduleFree(
            params,
            lr=lr,
            momentum=momentum or 0.9,
            weight_decay=weight_decay,
            warmup_steps=warmup_steps,
        )
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def _adam_or_sf(
    params: Any, lr: float, schedulefree: bool, warmup_steps: int, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    if schedulefree:
        import schedulefree as sf

        return sf.AdamWScheduleFree(
            params, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps
        )
    if weight_decay:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr)


def _shuffled(x: torch.Tensor, y: torch.Tensor, batch: int, seed: int) -> Iterator[Batch]:
    """Shuffled epochs of a fixed training set (the last incomplete batch of an epoch dropped)."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y) - batch + 1, batch):
            idx = perm[i : i + batch]
            yield x[idx], y[idx]


def _standardize(x_train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    mu, sd = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    return [(t - mu) / sd for t in (x_train, *others)]


def _relu_mlp(widths: list[int], batchnorm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            if batchnorm:
                layers.append(nn.BatchNorm1d(widths[i + 1]))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------------------------
# 4. nqm: the noisy quadratic model (Zhang et al. 2019), plain SGD
# --------------------------------------------------------------------------------------------

_NQM_DIM = 500
_NQM_BATCH = 1  # gradient-noise covariance H / B
#: curvatures h_i = 1/i: 2.7 decades, largest 1 (SGD is stable below LR 2)
_NQM_H = 1.0 / torch.arange(1, _NQM_DIM + 1, dtype=torch.float32)


class Quadratic(nn.Module):
    def __init__(self, theta: torch.Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())

    def forward(self, xi: torch.Tensor) -> torch.Tensor:
        return 0.5 * (_NQM_H * (self.theta - xi) ** 2).sum()


def make_nqm(seed: int) -> Setup:
    # initial θ ~ N(0, I), drawn from the seed
    gen = torch.Generator().manual_seed(10_000 + seed)
    model = Quadratic(torch.randn(_NQM_DIM, generator=gen))

    def optimizer(
        lr: float, schedulefree: bool = False, warmup_steps: int = 0
    ) -> torch.optim.Optimizer:
        return _sgd_or_sf(model.parameters(), lr, schedulefree, warmup_steps)

    def batches() -> Iterator[Batch]:
        g = torch.Generator().manual_seed(seed + 1)
        scale = 1.0 / (_NQM_BATCH * _NQM_H).sqrt()
        while True:
            # the minimum of this step's loss: ξ_i ~ N(0, 1/(B h_i)), so the gradient
            # h_i (θ_i − ξ_i) has noise covariance H/B
            yield torch.randn(_NQM_DIM, generator=g) * scale, torch.zeros(())

    def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        return m(batch[0])

    def val_loss(m: nn.Module) -> float:
        # the noise-free loss ½ Σ h_i θ_i² (the expected loss minus its constant d/(2B))
        return _evaluate(m, lambda: 0.5 * (_NQM_H * m.theta**2).sum())

    return Setup(model, optimizer, batches(), loss, val_loss)


# --------------------------------------------------------------------------------------------
# 5. noisyreg: linear regression under heavy label noise, Adam
# --------------------------------------------------------------------------------------------

_NR_DIM = 32
_NR_NOISE = 3.0  # label noise σ; the signal has unit variance
_NOISYREG: dict[str, torch.Tensor] = {}


def _noisyreg() -> dict[str, torch.Tensor]:
    if not _NOISYREG:
        gen = torch.Generator().manual_seed(777)
        # input scales spread over a decade; the teacher gives unit-variance targets
        scales = torch.logspace(0, -1, _NR_DIM)
        w = torch.randn(_NR_DIM, generator=gen)
        w = w / (w * scales).norm()
        x_val = torch.randn(4096, _NR_DIM, generator=gen) * scales
        _NOISYREG.update(scales=scales, w=w, x_val=x_val, y_val=(x_val @ w).unsqueeze(1))
    return _NOISYREG


def make_noisyreg(seed: int) -> Setup:
    d = _noisyreg()
    torch.manual_seed(seed)
    model = nn.Linear(_NR_DIM, 1)

    def optimizer(
        lr: float, schedulefree: bool = False, warmup_steps: int = 0
    ) -> torch.optim.Optimizer:
        return _adam_or_sf(model.parameters(), lr, schedulefree, warmup_steps)

    def batches() -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(seed + 1)
        while True:
            x = torch.randn(16, _NR_DIM, generator=gen) * d["scales"]
            y = (x @ d["w"]).unsqueeze(1) + _NR_NOISE * torch.randn(16, 1, generator=gen)
            yield x, y

    def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        return F.mse_loss(m(batch[0]), batch[1])

    def val_loss(m: nn.Module) -> float:
        # excess risk: MSE against the noise-free targets
        return _evaluate(m, lambda: F.mse_loss(m(d["x_val"]), d["y_val"]))

    return Setup(model, optimizer, batches(), loss, val_loss)


# --------------------------------------------------------------------------------------------
# 6. bnnet: MLP with BatchNorm on a generated 8-class problem, SGD momentum 0.9 + wd 5e-4
# --------------------------------------------------------------------------------------------

_BN: dict[str, torch.Tensor] = {}


def _bn_data() -> dict[str, torch.Tensor]:
    if not _BN:
        from sklearn.datasets import make_classification

        x, y = make_classification(
            n_samples=10_000,
            n_features=40,
            n_informative=20,
            n_redundant=10,
            n_classes=8,
            n_clusters_per_class=2,
            flip_y=0.05,
            class_sep=1.0,
            random_state=7,
        )
        x = torch.tensor(x, dtype=torch.float32)
        y = torch.tensor(y, dtype=torch.long)
        n_val = 2000
        _BN.update(x_val=x[:n_val], y_val=y[:n_val], x_train=x[n_val:], y_train=y[n_val:])
    return _BN


def make_bnnet(seed: int) -> Setup:
    d = _bn_data()
    torch.manual_seed(seed)
    model = _relu_mlp([40, 256, 256, 8], batchnorm=True)

    def optimizer(
        lr: float, schedulefree: bool = False, warmup_steps: int = 0
    ) -> torch.optim.Optimizer:
        return _sgd_or_sf(
            model.parameters(), lr, schedulefree, warmup_steps, momentum=0.9, weight_decay=5e-4
        )

    def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(m(batch[0]), batch[1])

    def val_loss(m: nn.Module) -> float:
        return _evaluate(m, lambda: F.cross_entropy(m(d["x_val"]), d["y_val"]))

    return Setup(
        model, optimizer, _shuffled(d["x_train"], d["y_train"], 64, seed + 1), loss, val_loss
    )


# --------------------------------------------------------------------------------------------
# 7. logreg: multinomial logistic regression (convex) on ill-conditioned features, plain SGD
# --------------------------------------------------------------------------------------------

_LR_DATA: dict[str, torch.Tensor] = {}


def _logreg_data() -> dict[str, torch.Tensor]:
    if not _LR_DATA:
        from sklearn.datasets import make_classification

        x, y = make_classification(
            n_samples=12_000,
            n_features=50,
            n_informative=30,
            n_redundant=0,
            n_classes=10,
            n_clusters_per_class=1,
            flip_y=0.05,
            class_sep=1.5,
            random_state=11,
        )
        x = torch.tensor(x, dtype=torch.float32)
        y = torch.tensor(y, dtype=torch.long)
        n_val = 2000
        x_tr, x_val = _standardize(x[n_val:], x[:n_val])
        # feature scales spread over 1.5 decades (fixed): an ill-conditioned convex problem
        scales = torch.logspace(0.5, -1.0, x.shape[1])[
            torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(5))
        ]
        _LR_DATA.update(
            x_train=x_tr * scales, y_train=y[n_val:], x_val=x_val * scales, y_val=y[:n_val]
        )
    return _LR_DATA


def make_logreg(seed: int) -> Setup:
    d = _logreg_data()
    torch.manual_seed(seed)
    model = nn.Linear(d["x_train"].shape[1], 10)

    def optimizer(
        lr: float, schedulefree: bool = False, warmup_steps: int = 0
    ) -> torch.optim.Optimizer:
        return _sgd_or_sf(model.parameters(), lr, schedulefree, warmup_steps)

    def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(m(batch[0]), batch[1])

    def val_loss(m: nn.Module) -> float:
        return _evaluate(m, lambda: F.cross_entropy(m(d["x_val"]), d["y_val"]))

    return Setup(
        model, optimizer, _shuffled(d["x_train"], d["y_train"], 32, seed + 1), loss, val_loss
    )


# --------------------------------------------------------------------------------------------
# 8. overfit: an MLP on 300 samples of sklearn's breast-cancer data, Adam
# --------------------------------------------------------------------------------------------

_BC: dict[str, torch.Tensor] = {}


def _bc_data() -> dict[str, torch.Tensor]:
    if not _BC:
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer()
        x = torch.tensor(data.data, dtype=torch.float32)
        y = torch.tensor(data.target, dtype=torch.float32).unsqueeze(1)
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(99))
        tr, val = perm[:300], perm[300:]
        x_tr, x_val = _standardize(x[tr], x[val])
        _BC.update(x_train=x_tr, y_train=y[tr], x_val=x_val, y_val=y[val])
    return _BC


def make_overfit(seed: int) -> Setup:
    d = _bc_data()
    torch.manual_seed(seed)
    model = _relu_mlp([30, 256, 256, 1])

    def optimizer(
        lr: float, schedulefree: bool = False, warmup_steps: int = 0
    ) -> torch.optim.Optimizer:
        return _adam_or_sf(model.parameters(), lr, schedulefree, warmup_steps)

    def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(m(batch[0]), batch[1])

    def val_loss(m: nn.Module) -> float:
        return _evaluate(m, lambda: F.binary_cross_entropy_with_logits(m(d["x_val"]), d["y_val"]))

    return Setup(
        model, optimizer, _shuffled(d["x_train"], d["y_train"], 30, seed + 1), loss, val_loss
    )


# --------------------------------------------------------------------------------------------
# 9. continued: a regression MLP pre-trained on distribution A, trained on a shifted B, AdamW
# --------------------------------------------------------------------------------------------

_CT_DIM = 16
_CONT: dict[str, Any] = {}


def _continued() -> dict[str, Any]:
    """Teachers A and B, B's data, and the pre-trained student (same weights for every seed)."""
    if not _CONT:
        torch.manual_seed(2468)
        teacher_a = _mlp([_CT_DIM, 64, 64, 1])
        teacher_b = _mlp([_CT_DIM, 64, 64, 1])
        gen = torch.Generator().manual_seed(1357)
        shift = 0.5 * torch.randn(_CT_DIM, generator=gen)  # B's inputs: a shifted mean
        with torch.no_grad():
            teacher_a[0].weight.mul_(2.0)
            teacher_b.load_state_dict(teacher_a.state_dict())
            for layer in (teacher_b[0], teacher_b[2], teacher_b[4]):
                # B's function: A's with every weight matrix perturbed by 40% of its scale
                w = layer.weight
                w.add_(0.4 * w.std() * torch.randn(w.shape, generator=gen))
            for t, mean in ((teacher_a, 0.0), (teacher_b, shift)):
                # targets of zero mean and unit variance under each task's inputs
                z = t(torch.randn(4096, _CT_DIM, generator=gen) + mean)
                t[-1].weight.div_(z.std())
                t[-1].bias.sub_(z.mean()).div_(z.std())
            x_b = torch.randn(1024, _CT_DIM, generator=gen) + shift
            y_b = teacher_b(x_b) + 0.1 * torch.randn(1024, 1, generator=gen)
            x_val = torch.randn(2048, _CT_DIM, generator=gen) + shift
            y_val = teacher_b(x_val)
        # pre-training on A: 400 steps of Adam, cosine from 3e-3, fresh batches of 64
        torch.manual_seed(97531)
        student = _mlp([_CT_DIM, 128, 128, 1])
        opt = torch.optim.Adam(student.parameters(), lr=3e-3)
        steps = 400
        for t in range(steps):
            for g in opt.param_groups:
                g["lr"] = 3e-3 * 0.5 * (1 + math.cos(math.pi * t / steps))
            x = torch.randn(64, _CT_DIM, generator=gen)
            with torch.no_grad():
                y = teacher_a(x)
            loss = F.mse_loss(student(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _CONT.update(
            pretrained={k: v.detach().clone() for k, v in student.state_dict().items()},
            x_train=x_b,
            y_train=y_b,
            x_val=x_val,
            y_val=y_val,
        )
    return _CONT


def make_continued(seed: int) -> Setup:
    c = _continued()
    model = _mlp([_CT_DIM, 128, 128, 1])
    model.load_state_dict(c["pretrained"])  # the seed varies B's data order only

    def optimizer(
        lr: float, schedulefree: bool = False, warmup_steps: int = 0
    ) -> torch.optim.Optimizer:
        return _adam_or_sf(model.parameters(), lr, schedulefree, warmup_steps, weight_decay=0.01)

    def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        return F.mse_loss(m(batch[0]), batch[1])

    def val_loss(m: nn.Module) -> float:
        return _evaluate(m, lambda: F.mse_loss(m(c["x_val"]), c["y_val"]))

    return Setup(
        model, optimizer, _shuffled(c["x_train"], c["y_train"], 32, seed + 1), loss, val_loss
    )


# --------------------------------------------------------------------------------------------
# 10. largebatch: smooth regression (Friedman #1) with batches of 1024, Adam
# --------------------------------------------------------------------------------------------

_FRIEDMAN: dict[str, torch.Tensor] = {}


def _friedman() -> dict[str, torch.Tensor]:
    if not _FRIEDMAN:
        from sklearn.datasets import make_friedman1

        x, y = make_friedman1(n_samples=18_432, n_features=10, noise=0.0, random_state=3)
        x = torch.tensor(x, dtype=torch.float32)
        y = torch.tensor(y, dtype=torch.float32).unsqueeze(1)
        y = (y - y.mean()) / y.std()
        n_val = 2048
        x_tr, x_val = _standardize(x[n_val:], x[:n_val])
        _FRIEDMAN.update(x_train=x_tr, y_train=y[n_val:], x_val=x_val, y_val=y[:n_val])
    return _FRIEDMAN


def make_largebatch(seed: int) -> Setup:
    d = _friedman()
    torch.manual_seed(seed)
    model = _mlp([10, 32, 32, 1])

    def optimizer(
        lr: float, schedulefree: bool = False, warmup_steps: int = 0
    ) -> torch.optim.Optimizer:
        return _adam_or_sf(model.parameters(), lr, schedulefree, warmup_steps)

    def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        return F.mse_loss(m(batch[0]), batch[1])

    def val_loss(m: nn.Module) -> float:
        return _evaluate(m, lambda: F.mse_loss(m(d["x_val"]), d["y_val"]))

    return Setup(
        model, optimizer, _shuffled(d["x_train"], d["y_train"], 1024, seed + 1), loss, val_loss
    )


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
        Task(
            "nqm",
            "noisy quadratic model: θ in R^500, curvatures h_i = 1/i (2.7 decades), per-step loss "
            "½Σh_i(θ_i−ξ_i)² with fresh ξ_i ~ N(0, 1/(B h_i)), B = 1 (gradient noise H/B), "
            "θ_0 ~ N(0, I) per seed, plain SGD (stable below LR 2); val = noise-free ½Σh_iθ_i²",
            steps=2000,
            lr_center=0.4,
            grid_factor=2.0,
            make=make_nqm,
        ),
        Task(
            "noisyreg",
            "linear regression, 32 inputs (scales over a decade), unit-variance linear target "
            "with label noise σ=3, fresh batches of 16, Adam; val = MSE to the noise-free target "
            "on 4096 points",
            steps=2000,
            lr_center=2.5e-3,
            grid_factor=2.0,
            make=make_noisyreg,
            autolr_max_factor=1.0,
        ),
        Task(
            "bnnet",
            "MLP 40-256-256-8 with BatchNorm on a generated 8-class problem (make_classification, "
            "8000 train, 5% flipped labels), batch 64, SGD momentum 0.9, wd 5e-4; val = "
            "cross-entropy on 2000 held-out samples",
            steps=1500,
            lr_center=0.1,
            grid_factor=3.0,
            make=make_bnnet,
        ),
        Task(
            "logreg",
            "multinomial logistic regression (convex) on a generated 10-class problem "
            "(make_classification, 50 features scaled over 1.5 decades, 10000 train), batch 32, "
            "plain SGD; val = cross-entropy on 2000 held-out samples",
            steps=2000,
            lr_center=1.0,
            grid_factor=3.0,
            make=make_logreg,
        ),
        Task(
            "overfit",
            "MLP 30-256-256-1 on 300 samples of sklearn's breast-cancer data (100 epochs), "
            "batch 30, Adam; val = binary cross-entropy on the other 269 samples",
            steps=1000,
            lr_center=1e-4,
            grid_factor=3.0,
            make=make_overfit,
        ),
        Task(
            "continued",
            "tanh MLP 16-128-128-1 pre-trained (400 Adam steps, same weights for every seed) on "
            "teacher A, trained on 1024 samples of a shifted task B (inputs' mean moved, teacher "
            "perturbed by 40%, label noise 0.1), batch 32, AdamW wd 0.01; val = MSE on 2048 "
            "noise-free B points",
            steps=1500,
            lr_center=1e-3,
            grid_factor=3.0,
            make=make_continued,
        ),
        Task(
            "largebatch",
            "tanh MLP 10-32-32-1 on the smooth Friedman #1 regression (16384 train, no noise, "
            "standardized), batches of 1024, Adam; val = MSE on 2048 held-out points",
            steps=1000,
            lr_center=0.03,
            grid_factor=3.0,
            make=make_largebatch,
        ),
    )
}

# The split between tasks autolr may be tuned on and tasks that only measure it. Fixed in code
# before any tuning on the new tasks (2 of the 3 original tasks had been tuned on for many
# sessions; the NQM joins them). It must not move: a task moved after seeing its results would
# make the held-out table, the one that counts, a tuning table.
TUNING: tuple[str, ...] = ("digits", "teacher", "charlm", "nqm")
HELD_OUT: tuple[str, ...] = ("noisyreg", "bnnet", "logreg", "overfit", "continued", "largebatch")
SPLITS: dict[str, tuple[str, ...]] = {"tuning": TUNING, "held-out": HELD_OUT}


def split_of(task: str) -> str:
    """``"tuning"`` or ``"held-out"``."""
    for name, members in SPLITS.items():
        if task in members:
            return name
    raise KeyError(f"task {task!r} is in no split")
