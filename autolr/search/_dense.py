"""The GP of ``_gp.build_model`` fitted and evaluated with dense NumPy: the fast engine.

The model is BoTorch's (``SingleTaskGP``: Matern-5/2 × outputscale, constant mean, Gaussian
noise learned on top of any known variances, ``Standardize`` outcomes, the same priors,
constraints and starting values, read from a BoTorch model by ``_gp.dense_spec``) and so is
the fit (MAP by SciPy's L-BFGS-B with ``FIT_OPTIONS``, from the same start, over the same raw
parameters and bounds). Only the arithmetic differs: the negative log posterior and its
gradient are written in closed form on the n × n matrices (n ≤ ~30 for one stage) instead of
GPyTorch modules, autograd and BoTorch's closure machinery, which cost ~95% of a decision's
CPU time for matrices this small (issue 19's profile). The posterior is the same closed form.

Results agree with the GPyTorch engine to rounding (``tests/core_tests/test_dense_gp.py``
checks loss, gradient, fitted hyperparameters, posterior and decisions against it); they are
not bit-identical, because autograd and the closed form round differently and BoTorch keeps
one noise parameter in float32 (mirrored here by rounding it to float32). Anything unusual (a
Cholesky failure, a non-finite value, an L-BFGS-B failure that BoTorch would retry from
prior samples) raises ``_DenseFitError`` and the caller refits with the GPyTorch engine, so
the rare paths keep BoTorch's behaviour exactly.

This module imports NumPy and SciPy only (no torch), so it runs without ``_FIT_LOCK``.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from scipy.linalg import solve_triangular
from scipy.linalg.lapack import dtrtrs as _trtrs
from scipy.optimize import minimize
from threadpoolctl import ThreadpoolController

Array = npt.NDArray[np.float64]

_SQRT5 = math.sqrt(5.0)
_LOG_2PI = math.log(2.0 * math.pi)

#: BoTorch accepts an L-BFGS-B run stopped by its iteration or evaluation cap: the messages
#: its ``botorch.optim.core._LBFGSB_MAXITER_MAXFUN_REGEX`` matches (both SciPy wordings).
_STOPPED = re.compile(
    "TOTAL NO. (of|OF) (ITERATIONS REACHED LIMIT|(f AND g|F,G) EVALUATIONS EXCEEDS LIMIT)"
)

#: Fits kept for reuse (see ``FitCache``). A decision holds one fit and a stage's end one more:
#: a few per concurrent request suffice; 64 × (n ≤ 30)² floats is a few hundred KiB at most.
FIT_CACHE_SIZE = 64


@functools.cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()  # finds the loaded BLAS libraries once (~10 ms)


_BLAS_LOCK = threading.Lock()
_blas_users = 0
_blas_limiter: Any = None


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run NumPy/SciPy's BLAS on one thread meanwhile (restored when the last user leaves).

    For n × n matrices with n ≤ ~30, OpenBLAS's worker threads only spin: on two busy cores a
    fit took 20x more CPU with them (0.40 s against 0.018 s, measured). Counted, so that
    concurrent decisions in the server's threads restore the original setting only once.
    """
    global _blas_users, _blas_limiter
    with _BLAS_LOCK:
        if _blas_users == 0:
            _blas_limiter = _threadpools().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


class _DenseFitError(RuntimeError):
    """The dense engine met a case it leaves to BoTorch (the caller refits with GPyTorch).

    Private: it never leaves ``autolr.search`` (not part of ``autolr.errors``' tree).
    """


class _NumericalError(ArithmeticError):
    """A step of L-BFGS-B landed where the objective is not finite (answered with NaN)."""


@dataclass(frozen=True)
class DenseSpec:
    """Everything of BoTorch's model that the closed form needs (see ``_gp.dense_spec``).

    Attributes:
        x0: starting raw parameters ``[noise, constant, outputscale, lengthscale]``, in the
            order BoTorch's ``get_parameters`` hands them to L-BFGS-B.
        bounds: L-BFGS-B bounds, shape (4, 2) (the noise's ``GreaterThan`` lower bound).
        noise_float32: BoTorch keeps the learned noise as float32 when variances are known.
        noise_prior: LogNormal ``(loc, scale)`` of the learned noise variance.
        outputscale_prior: its Gamma prior.
        lengthscale_prior: its Gamma prior.
        softplus_threshold: the Positive constraints' softplus threshold (identity above).
        min_stdv: ``Standardize``'s smallest standard deviation (else 1 is used).
        min_variance: GPyTorch's smallest posterior variance for float64.
        min_fixed_noise: GPyTorch's floor on known (standardized) variances, float64.
        log_f32: torch's float32 ``log`` (NumPy's float32 log differs from it in the last
            bit for ~21% of inputs, measured; the noise prior needs torch's bits).
    """

    x0: tuple[float, float, float, float]
    bounds: tuple[tuple[float, float], ...]
    noise_float32: bool
    noise_prior: tuple[float, float]
    outputscale_prior: GammaTerms
    lengthscale_prior: GammaTerms
    softplus_threshold: float
    min_stdv: float
    min_variance: float
    min_fixed_noise: float
    log_f32: Callable[[float], float]


_F32 = np.float32
#: ``math.log(math.sqrt(2 * math.pi))``, the constant of torch's ``Normal.log_prob``.
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


def _softplus(raw: float, threshold: float) -> tuple[float, float]:
    """``softplus(raw)`` and ``exp(raw)`` (for its derivative), as torch computes them."""
    if raw > threshold:
        return raw, math.inf
    tail = math.exp(raw)
    return math.log1p(tail), tail


def _softplus_backward(grad: float, tail: float) -> float:
    """torch's ``softplus_backward``: ``grad · z / (z + 1)`` with ``z = exp(raw)``."""
    return grad if math.isinf(tail) else grad * tail / (tail + 1.0)


def _gamma_log_prob(value: float, prior: GammaTerms, upstream: float) -> tuple[float, float]:
    """Gamma log density at ``value`` and ``upstream ·`` its derivative, as torch does both.

    In float64 (the kernel's priors move to the model's dtype; their parameters keep the
    float32 rounding they were created with), in the order of torch's ``Gamma.log_prob``.
    """
    a, b = prior.concentration, prior.rate
    am1 = a - 1.0
    log_prob = ((prior.xlogy_ab + am1 * math.log(value)) - b * value) - prior.lgamma_a
    grad = (upstream * am1) / value + (-upstream) * b
    return log_prob, grad


def _lognormal_log_prob(
    value: float,
    prior: tuple[float, float],
    upstream: float,
    log_f32: Callable[[float], float] | None,
) -> tuple[float, float]:
    """LogNormal log density at ``value`` and ``upstream ·`` its derivative, as torch does both.

    In float32 when the noise parameter is float32 (the fixed-noise likelihood: ``log_f32``
    given), else in float64, in the order of torch's ``TransformedDistribution`` and
    ``Normal.log_prob``.
    """
    kind: Any = _F32 if log_f32 is not None else np.float64
    v, g0 = kind(value), kind(upstream)
    loc, scale, two = kind(prior[0]), kind(prior[1]), kind(2.0)
    const = kind(_LOG_SQRT_2PI)
    if log_f32 is not None:
        x, log_scale = _F32(log_f32(float(v))), _F32(log_f32(float(scale)))
    else:
        x, log_scale = np.log(v), np.log(scale)
    d = x - loc
    den = two * (scale * scale)
    log_prob = -x + (((-(d * d)) / den - log_scale) - const)
    dx = -g0 + (-(g0 / den)) * (two * d)
    return float(log_prob), float(dx / v)


@dataclass(frozen=True)
class GammaTerms:
    """A Gamma prior's parameters and the constant terms torch computes in float32."""

    concentration: float
    rate: float
    xlogy_ab: float
    lgamma_a: float


def _solve_lower(chol: Array, rhs: Array) -> Array:
    """``solve_triangular(chol, rhs, lower=True)`` for a C-ordered ``chol``: the same LAPACK
    call SciPy makes (``trtrs`` on the transpose), without its ~40 µs of argument checks."""
    out, info = _trtrs(chol.T, rhs, lower=0, trans=1)
    if info != 0:
        raise _NumericalError
    return cast(Array, out)


def _solve_upper(upper: Array, rhs: Array) -> Array:
    """``solve_triangular(upper, rhs, lower=False)`` for an F-ordered ``upper`` (``chol.T``)."""
    out, info = _trtrs(upper, rhs, lower=0, trans=0)
    if info != 0:
        raise _NumericalError
    return cast(Array, out)


def _matern(dist: Array) -> tuple[Array, Array]:
    """Matern-5/2 correlation of scaled distances, and ``exp(-√5 d)`` (for the gradient)."""
    decay = np.exp(-_SQRT5 * dist)
    return (1.0 + _SQRT5 * dist + (5.0 / 3.0) * dist * dist) * decay, decay


@dataclass(frozen=True)
class DenseGP:
    """A fitted GP: what the posterior needs, in standardized units.

    Attributes:
        x: training inputs, shape (n,).
        y_mean, y_std: ``Standardize``'s statistics (outputs are ``y_mean + y_std · f``).
        constant, outputscale, lengthscale, noise: fitted hyperparameters (noise: learned
            variance on top of the known ones, standardized units).
        chol: lower Cholesky factor of ``K + diag(noise)``, shape (n, n).
        alpha: ``K⁻¹ (y − constant)``, shape (n,).
        min_variance: floor of the posterior variance (GPyTorch's, float64).
    """

    x: Array
    y_mean: float
    y_std: float
    constant: float
    outputscale: float
    lengthscale: float
    noise: float
    chol: Array
    alpha: Array
    min_variance: float

    def posterior(self, points: Array) -> tuple[Array, Array]:
        """Posterior mean and standard deviation of the latent function at ``points`` (m,).

        In the units of y (un-standardized), as BoTorch's ``model.posterior`` gives them.
        """
        dist = np.abs(points[:, None] - self.x[None, :]) / self.lengthscale  # (m, n)
        cross = self.outputscale * _matern(dist)[0]
        mean = self.constant + cross @ self.alpha
        white = solve_triangular(self.chol, cross.T, lower=True, check_finite=False)  # (n, m)
        latent_var = self.outputscale - np.einsum("ij,ij->j", white, white)
        var = np.maximum(self.y_std * self.y_std * latent_var, self.min_variance)
        out_mean: Array = self.y_mean + self.y_std * mean
        out_std: Array = np.sqrt(var)
        return out_mean, out_std


def _standardize(
    ys: Sequence[float], noise: Sequence[float] | None, spec: DenseSpec
) -> tuple[Array, Array, float, float]:
    """``Standardize``: targets, known variances (zeros if none), mean and std.

    Known variances are floored as GPyTorch's fixed-noise likelihood floors them.
    """
    y = np.asarray(ys, dtype=np.float64)
    mean = float(y.mean())
    std = float(y.std(ddof=1)) if y.size > 1 else 1.0
    if not std >= spec.min_stdv:
        std = 1.0
    if noise is None:
        known = np.zeros_like(y)
    else:
        known = np.maximum(np.asarray(noise, dtype=np.float64) / std**2, spec.min_fixed_noise)
    return (y - mean) / std, known, mean, std


def fit(
    xs: Sequence[float],
    ys: Sequence[float],
    noise: Sequence[float] | None,
    spec: DenseSpec,
    options: dict[str, float],
) -> DenseGP:
    """MAP fit of the GP's hyperparameters, as ``_gp._fit`` does it with GPyTorch.

    Args:
        xs: observed points in [0, 1], length n ≥ 1.
        ys: finite outcomes, length n.
        noise: known outcome variances (units of y²), length n, or None.
        spec: the model's definition (``_gp.dense_spec``).
        options: L-BFGS-B options (``_gp.FIT_OPTIONS``).

    Raises:
        _DenseFitError: a Cholesky failed, a value was not finite, or L-BFGS-B failed.
    """
    x = np.asarray(xs, dtype=np.float64)
    y, known, y_mean, y_std = _standardize(ys, noise, spec)
    n = x.size
    absdiff = np.abs(x[:, None] - x[None, :])
    eye = np.eye(n)
    diag = np.diag_indices(n)
    threshold = spec.softplus_threshold

    def objective(raw: Array) -> tuple[float, Array]:
        raw_noise, constant, raw_scale, raw_length = (float(v) for v in raw)
        if spec.noise_float32:  # torch copies the L-BFGS-B state into a float32 parameter
            raw_noise = float(np.float32(raw_noise))
        scale, scale_tail = _softplus(raw_scale, threshold)
        length, length_tail = _softplus(raw_length, threshold)
        if not (scale > 0.0 and length > 0.0 and raw_noise > 0.0):
            raise _NumericalError
        dist = absdiff / length
        corr, decay = _matern(dist)
        cov = scale * corr
        cov[diag] += known + raw_noise
        try:
            chol = cast(Array, np.linalg.cholesky(cov))
        except np.linalg.LinAlgError as err:
            raise _NumericalError from err
        resid = y - constant
        white = _solve_lower(chol, resid)
        alpha = _solve_upper(chol.T, white)
        chol_inv = _solve_lower(chol, eye)
        # d log N / d K = ½ (α αᵀ − K⁻¹)
        d_cov = 0.5 * (np.outer(alpha, alpha) - chol_inv.T @ chol_inv)
        log_lik = -0.5 * float((white * white).sum()) - float(np.log(np.diagonal(chol)).sum())
        log_lik -= 0.5 * n * _LOG_2PI
        # the loss is -(log N + log priors) / n: every term's gradient carries -1/n
        upstream = -(1.0 / n)
        lp_noise, g_noise = _lognormal_log_prob(
            raw_noise, spec.noise_prior, upstream, spec.log_f32 if spec.noise_float32 else None
        )
        lp_scale, g_scale = _gamma_log_prob(scale, spec.outputscale_prior, upstream)
        lp_length, g_length = _gamma_log_prob(length, spec.lengthscale_prior, upstream)
        # dM/dℓ for Matern-5/2: (5/3) d² (1 + √5 d) e^{-√5 d} / ℓ
        d_corr_d_length = (5.0 / 3.0) * dist * dist * (1.0 + _SQRT5 * dist) * decay / length
        lik_noise = upstream * float(np.trace(d_cov))
        if spec.noise_float32:  # the likelihood's part lands in a float32 .grad as well
            grad_noise = float(_F32(lik_noise) + _F32(g_noise))
        else:
            grad_noise = lik_noise + g_noise
        grad_constant = upstream * float(alpha.sum())
        grad_scale = _softplus_backward(
            upstream * float((d_cov * corr).sum()), scale_tail
        ) + _softplus_backward(g_scale, scale_tail)
        grad_length = _softplus_backward(
            upstream * scale * float((d_cov * d_corr_d_length).sum()), length_tail
        ) + _softplus_backward(g_length, length_tail)
        loss = -(((log_lik + lp_noise) + lp_scale) + lp_length) / n
        grad = np.array([grad_noise, grad_constant, grad_scale, grad_length])
        if not (math.isfinite(loss) and np.isfinite(grad).all()):
            raise _NumericalError
        return loss, grad

    non_finite: list[Array] = []

    def guarded(raw: Array) -> tuple[float, Array]:
        """The objective; a step where it is not finite is answered with NaN, as BoTorch's
        closure answers a failed Cholesky (L-BFGS-B backs off), and remembered."""
        try:
            with np.errstate(all="ignore"):
                return objective(raw)
        except (_NumericalError, ValueError, OverflowError, ZeroDivisionError):
            non_finite.append(raw)
            return math.nan, np.full(4, math.nan)

    result = minimize(
        guarded,
        np.array(spec.x0, dtype=np.float64),
        jac=True,
        bounds=np.array(spec.bounds, dtype=np.float64),
        method="L-BFGS-B",
        options=dict(options),
    )
    message = result.message if isinstance(result.message, str) else str(result.message)
    if not (result.success or _STOPPED.search(message)):
        raise _DenseFitError(f"L-BFGS-B failed: {message}")
    if non_finite:
        # GPyTorch's non-finite steps need not be these (nor fail the same way); measured on
        # decision_latency.py's data, letting L-BFGS-B go on from them here changed 6 of 300
        # decisions, leaving them to BoTorch changes none
        raise _DenseFitError(f"{len(non_finite)} L-BFGS-B steps were not finite")
    raw_noise, constant, raw_scale, raw_length = (float(v) for v in result.x)
    if spec.noise_float32:
        raw_noise = float(np.float32(raw_noise))
    scale = _softplus(raw_scale, threshold)[0]
    length = _softplus(raw_length, threshold)[0]
    if not (scale > 0.0 and length > 0.0 and raw_noise > 0.0):
        raise _DenseFitError("the fit ended on a zero hyperparameter")
    cov = scale * _matern(absdiff / length)[0]
    cov[diag] += known + raw_noise
    try:
        chol = cast(Array, np.linalg.cholesky(cov))
    except np.linalg.LinAlgError as err:
        raise _DenseFitError(f"Cholesky failed: {err}") from err
    white = solve_triangular(chol, y - constant, lower=True, check_finite=False)
    alpha = solve_triangular(chol.T, white, lower=False, check_finite=False)
    return DenseGP(
        x=x,
        y_mean=y_mean,
        y_std=y_std,
        constant=constant,
        outputscale=scale,
        lengthscale=length,
        noise=raw_noise,
        chol=chol,
        alpha=alpha,
        min_variance=spec.min_variance,
    )


FitKey = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...] | None]


class FitCache:
    """The last ``FIT_CACHE_SIZE`` fits, keyed by their exact inputs (thread-safe LRU).

    A fit is a pure function of ``(xs, ys, noise)`` (no seed: the dense engine never draws),
    so a hit returns exactly what a refit would: the searcher stays stateless in behaviour,
    and a request that fits twice on the same observations (``decide`` and then ``choose``
    at a stage's end; the dashboard drawing a stage) pays once.
    """

    def __init__(self, size: int = FIT_CACHE_SIZE) -> None:
        self._size = size
        self._fits: OrderedDict[FitKey, DenseGP] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: FitKey) -> DenseGP | None:
        with self._lock:
            found = self._fits.get(key)
            if found is None:
                self.misses += 1
                return None
            self._fits.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: FitKey, model: DenseGP) -> None:
        with self._lock:
            self._fits[key] = model
            self._fits.move_to_end(key)
            while len(self._fits) > self._size:
                self._fits.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._fits.clear()
            self.hits = self.misses = 0
