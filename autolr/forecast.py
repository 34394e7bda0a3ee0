"""Loss forecasting: where will a short loss series be after τ steps?

AutoLRS probes each candidate learning rate for a short window (τ' steps, or a few validation
evaluations) and ranks the candidates by the loss *forecast* at the end of the stage (τ steps).
The forecast fits ``L(t) = a·exp(b·t) + c`` with ``b <= 0`` to a smoothed copy of the series and
evaluates it at the horizon.

The reference implementation of the paper breaks in a few well-known ways; this module avoids
each of them (the numbers refer to the pitfalls in AUTOLRS.md):

* NaN or inf losses never raise and never reach a ``min()`` (pitfall 2): the forecaster returns
  a :class:`Forecast` with ``ok=False`` and a reason, and the caller applies its penalty.
* A loss that barely bends inside the window (less than about one e-fold) is not extrapolated:
  the exponential is then a disguised straight line whose 10x extrapolation predicted negative
  losses. The forecast is the last smoothed value instead, and every forecast is clamped to a
  plausible range (pitfall 3). Least-squares residuals are computed here, never taken from
  ``lstsq`` (which returns none for rank-deficient systems).
* The outlier filter only runs on series of at least 17 points (pitfall 4).
* Smoothing works on a normalized copy of the series with a noise level estimated from the
  series itself, so the forecast is affine-equivariant: forecasting ``k·L + m`` (``k > 0``) gives
  ``k·forecast(L) + m`` (pitfall 5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from scipy.interpolate import splev, splrep
from scipy.optimize import minimize_scalar

__all__ = ["ExponentialForecaster", "Forecast", "Forecaster"]

_Array = npt.NDArray[np.float64]

# Range of the decay rate searched, in e-folds per window (|b|·(t_last - t_first)).
# 1e-3 e-folds is indistinguishable from a straight line; at 100 e-folds the whole decay happens
# within the first 1% of the window. Rates outside add nothing the ends of the range do not.
_MIN_RATE = 1e-3
_MAX_RATE = 100.0
# Coarse log-spaced grid before the bounded Brent refinement: the profile residual can have
# more than one local minimum (a slow decay vs. a fast drop onto a plateau), so a local search
# alone could stop at the wrong one. 48 points cost ~0.3 ms on 1000 points.
_GRID_POINTS = 48
# Consistency constant of the median absolute deviation for Gaussian noise.
_MAD_TO_SD = 1.482602218505602
# Rises smaller than this fraction of the series' range are roundoff, not a trend (only matters
# for noise-free series, where the noise estimate is zero).
_RISE_FLOOR = 1e-6
# Deviations below this fraction of the series' range are roundoff, never outliers.
_ROUNDOFF = 1e-9


@dataclass(frozen=True)
class Forecast:
    """The result of one forecast; never an exception for bad data.

    Attributes:
        ok: False when the series could not be trusted (non-finite values, too few points,
            a diverging loss, a failed fit); the caller should then apply its own penalty.
        value: predicted loss at the horizon, in the caller's units; ``math.nan`` when not ok.
        reason: ``""`` when ok; otherwise a short human-readable reason such as
            ``"non-finite loss"``, ``"too few points (5 < 8)"`` or ``"rising loss"``.
        a: amplitude of the fitted ``L(t) = a·exp(b·t) + c``, in loss units at ``t = 0`` of the
            caller's steps (may overflow to ``inf`` when the steps are far from 0); nan when no
            fit was made.
        b: decay rate per caller step, ``b <= 0``; nan when no fit was made.
        c: asymptote of the fit, in loss units; nan when no fit was made.
        last_smoothed: the smoothed series' last value in loss units (nan when unavailable).
            Also set for a rising series, so that a caller can size a penalty from it.

    Note:
        ``a``, ``b`` and ``c`` are diagnostics. ``value`` is not always ``a·exp(b·H) + c``: it
        is clamped to a plausible range, and when the fit sees less than one e-fold inside the
        window it is the last smoothed value (see :class:`ExponentialForecaster`).
    """

    ok: bool
    value: float
    reason: str
    a: float
    b: float
    c: float
    last_smoothed: float

    @classmethod
    def failed(cls, reason: str, last_smoothed: float = math.nan) -> Forecast:
        """A not-ok forecast carrying ``reason``."""
        return cls(
            ok=False,
            value=math.nan,
            reason=reason,
            a=math.nan,
            b=math.nan,
            c=math.nan,
            last_smoothed=last_smoothed,
        )


class Forecaster(Protocol):
    """Predicts a loss at a future step from a short loss series.

    Contract for every implementation:

    * ``forecast`` never raises because of the *data*: NaN or inf anywhere, too few points,
      mismatched lengths, non-increasing steps or a failed fit give ``ok=False`` with a
      non-empty ``reason``. It may raise ``ValueError`` for programmer errors only (a horizon
      that is not a finite positive number).
    * It is a pure function of its arguments (no state kept between calls, no randomness), so
      one instance can be shared between threads.
    * Inputs are read, never modified.
    """

    def forecast(self, steps: Sequence[float], losses: Sequence[float], horizon: float) -> Forecast:
        """Forecast the loss at ``horizon``.

        Args:
            steps: x positions of the losses, strictly increasing (e.g. step indices 1..n
                inside a probe, or the steps at which validation was evaluated).
            losses: the loss at each step, same length as ``steps``.
            horizon: the x at which to predict, on the same axis as ``steps`` and not before
                the last step (e.g. τ).

        Returns:
            The forecast; see :class:`Forecast`.

        Raises:
            ValueError: if ``horizon`` is not a finite positive number.
        """
        ...


class ExponentialForecaster:
    """AutoLRS's forecaster: smooth, fit ``a·exp(b·t) + c``, evaluate at the horizon.

    Steps, in a normalized space (losses mapped affinely to a range of width 1 around their
    median, steps to ``u ∈ [0, 1]``) so that nothing depends on the loss's or the steps' units:

    1. Estimate the per-point noise level from the data (local-linear pseudo-residuals,
       Gasser, Sroka & Jennen-Steinmetz 1986, with a median absolute deviation).
    2. On series of at least ``outlier_min_points`` points, drop up to ``outlier_fraction``
       of the points, only in the first half of the window (the paper's filter for spikes
       early in a probe): those further than ``outlier_sds`` robust standard deviations from
       the running median of five points, worst first, in a few rounds. Then smooth the kept
       points with a smoothing spline whose residual budget is ``n·noise²`` (a spline that
       leaves just the noise behind), evaluated at every step.
    3. Report a rising series as not ok: when the mean of the last 10% of the smoothed series
       exceeds the mean of the first 10% by more than ``rise_sds`` per-point noise levels
       (and by more than 1e-6 of the range, so that noise-free series need a real rise). A rise
       within the noise is not divergence: such a series is ok and forecasts about its last
       smoothed value.
    4. Fit ``a·exp(-r·u) + c`` to the smoothed values: ``r = exp(β)`` by a log-spaced grid over
       ``r ∈ [1e-3, 100]`` e-folds per window refined by bounded Brent on β; for each ``r`` the
       pair ``(a, c)`` is linear least squares with the residual computed here.
    5. Guard and clamp: when ``r < min_efolds`` the series shows too little curvature for an
       exponential to be identified, and the forecast is the last smoothed value (no
       extrapolation). Otherwise the forecast is the fit at the horizon. Either way it is
       clamped to ``[min(L) - 2R, max(L)]`` where ``R`` is the range of the smoothed series over
       the window's second half, and, when every loss is ``>= 0``, to ``>= 0``: the asymptote
       may lie below the observed minimum, but not by more than the loss fell recently (a
       spike, or the drop from initialization, early in the window must not license a forecast
       of zero), and a loss series never forecasts above its own maximum.

    A constant series is a legitimate forecast (the loss stays): ``ok=True`` with the constant
    as the value and ``a = b = 0``.

    Cost: a few milliseconds (measured 5-8 ms for 1000 points, 1-2 ms for 100); fine to call
    once per probe.

    Example:
        >>> import math
        >>> steps = [float(i) for i in range(1, 101)]
        >>> losses = [2.0 * math.exp(-0.03 * t) + 0.5 for t in steps]
        >>> result = ExponentialForecaster().forecast(steps, losses, horizon=1000.0)
        >>> result.ok, round(result.value, 3), round(result.b, 3)
        (True, 0.5, -0.03)
        >>> ExponentialForecaster().forecast(steps[:5], losses[:5], 1000.0).reason
        'too few points (5 < 8)'
    """

    def __init__(
        self,
        *,
        min_points: int = 8,
        outlier_fraction: float = 0.03,
        outlier_min_points: int = 17,
        outlier_iterations: int = 3,
        outlier_sds: float = 3.0,
        rise_sds: float = 3.0,
        min_efolds: float = 1.0,
        spline_degree: int = 3,
    ) -> None:
        """Configure the forecaster.

        Args:
            min_points: fewest points a series needs; shorter ones are not ok. At least 5
                (three fitted parameters plus slack for the spline).
            outlier_fraction: at most this fraction of the points may be dropped as outliers
                (the paper: 3%). At least one point may go once the filter runs.
            outlier_min_points: the outlier filter runs only on series at least this long
                (pitfall 4: on short series it removes the signal).
            outlier_iterations: rounds of the outlier filter (the paper iterates); each round
                recomputes the running medians over the points kept.
            outlier_sds: only points further than this many robust standard deviations from
                the running median are outliers; noise-free series therefore lose nothing.
            rise_sds: a series is "rising" (diverging) when its smoothed end exceeds its
                smoothed start by more than this many per-point noise levels.
            min_efolds: below this many e-folds inside the window the exponential is not
                extrapolated (pitfall 3); the forecast is the last smoothed value.
            spline_degree: degree of the smoothing spline, 2 (the paper) to 5.

        Raises:
            ValueError: for a value out of its range.
        """
        if min_points < 5:
            raise ValueError(f"min_points must be >= 5, got {min_points}")
        if not 0.0 <= outlier_fraction < 0.5:
            raise ValueError(f"outlier_fraction must be in [0, 0.5), got {outlier_fraction}")
        if outlier_min_points < 1:
            raise ValueError(f"outlier_min_points must be >= 1, got {outlier_min_points}")
        if outlier_iterations < 0:
            raise ValueError(f"outlier_iterations must be >= 0, got {outlier_iterations}")
        if not outlier_sds > 0:
            raise ValueError(f"outlier_sds must be > 0, got {outlier_sds}")
        if not rise_sds >= 0:
            raise ValueError(f"rise_sds must be >= 0, got {rise_sds}")
        if not min_efolds >= 0:
            raise ValueError(f"min_efolds must be >= 0, got {min_efolds}")
        if not 2 <= spline_degree <= 5:
            raise ValueError(f"spline_degree must be in [2, 5], got {spline_degree}")
        self.min_points = min_points
        self.outlier_fraction = outlier_fraction
        self.outlier_min_points = outlier_min_points
        self.outlier_iterations = outlier_iterations
        self.outlier_sds = outlier_sds
        self.rise_sds = rise_sds
        self.min_efolds = min_efolds
        self.spline_degree = spline_degree

    def __repr__(self) -> str:
        return (
            f"ExponentialForecaster(min_points={self.min_points}, "
            f"outlier_fraction={self.outlier_fraction}, "
            f"outlier_min_points={self.outlier_min_points}, "
            f"outlier_iterations={self.outlier_iterations}, outlier_sds={self.outlier_sds}, "
            f"rise_sds={self.rise_sds}, min_efolds={self.min_efolds}, "
            f"spline_degree={self.spline_degree})"
        )

    def forecast(self, steps: Sequence[float], losses: Sequence[float], horizon: float) -> Forecast:
        """Forecast the loss at ``horizon``; see :class:`Forecaster` for the contract.

        Args:
            steps: strictly increasing x positions of the losses.
            losses: the loss at each step.
            horizon: where to predict, not before the last step.

        Returns:
            The forecast, ``ok=False`` with a reason when the data cannot be trusted.

        Raises:
            ValueError: if ``horizon`` is not a finite positive number.
        """
        horizon = float(horizon)
        if not (math.isfinite(horizon) and horizon > 0):
            raise ValueError(f"horizon must be a finite positive number, got {horizon}")
        try:
            t = np.array(steps, dtype=np.float64)
            y = np.array(losses, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            return Forecast.failed("steps and losses must be sequences of numbers")
        if t.ndim != 1 or y.ndim != 1:
            return Forecast.failed("steps and losses must be one-dimensional")
        if t.size != y.size:
            return Forecast.failed(f"length mismatch ({t.size} steps, {y.size} losses)")
        if not np.all(np.isfinite(y)):
            return Forecast.failed("non-finite loss")
        if not np.all(np.isfinite(t)):
            return Forecast.failed("non-finite step")
        if y.size < self.min_points:
            return Forecast.failed(f"too few points ({y.size} < {self.min_points})")
        if not np.all(t[1:] > t[:-1]):
            return Forecast.failed("steps are not strictly increasing")
        if horizon < t[-1]:
            return Forecast.failed(f"horizon {horizon:g} is before the last step {t[-1]:g}")
        with np.errstate(all="ignore"):
            try:
                return self._forecast_finite(t, y, horizon)
            except (ValueError, TypeError, ArithmeticError) as exc:
                # Data-dependent numerical failure inside scipy (e.g. FITPACK rejecting knots
                # closer than float precision); the contract says: report, never raise.
                return Forecast.failed(f"fit failed ({type(exc).__name__})")

    def _forecast_finite(self, t: _Array, y: _Array, horizon: float) -> Forecast:
        """Forecast for validated input: finite, long enough, strictly increasing steps."""
        y_min, y_max = float(y.min()), float(y.max())
        if y_min == y_max:
            return _constant(y_min)
        # Normalize losses in two exact-ish stages: dividing by the largest magnitude first
        # keeps the range computation from overflowing near the float limit.
        y_mag = max(abs(y_min), abs(y_max))
        y_unit = y / y_mag
        center = float(np.median(y_unit))
        spread = float(y_unit.max() - y_unit.min())
        if not spread > 0:  # distinct only beyond float precision after the division
            return _constant(float(np.median(y)))
        z = (y_unit - center) / spread

        def to_loss(value_z: float) -> float:
            return (value_z * spread + center) * y_mag

        t_mag = max(abs(float(t[0])), abs(float(t[-1])))
        t_unit = t / t_mag
        width = float(t_unit[-1] - t_unit[0])
        u = (t_unit - t_unit[0]) / width
        if not (width > 0 and np.all(u[1:] > u[:-1])):
            return Forecast.failed("steps too close together to resolve")
        horizon_u = (horizon / t_mag - float(t_unit[0])) / width

        noise = _noise_sd(u, z)
        smoothed = self._smooth(u, z, noise)
        if smoothed is None or not np.all(np.isfinite(smoothed)):
            return Forecast.failed("fit failed (smoothing spline)")
        last_smoothed = to_loss(float(smoothed[-1]))

        edge = max(1, math.ceil(0.1 * z.size))
        rise = float(smoothed[-edge:].mean() - smoothed[:edge].mean())
        if rise > max(self.rise_sds * noise, _RISE_FLOOR):
            return Forecast.failed("rising loss", last_smoothed=last_smoothed)

        rate, a_z, c_z = _fit_exponential(u, smoothed)
        if rate < self.min_efolds:
            value_z = float(smoothed[-1])
        else:
            value_z = a_z * math.exp(-rate * horizon_u) + c_z
        value = to_loss(value_z)
        # Extrapolation is bounded by the recent trend: below the lowest loss seen by at most
        # twice what the smoothed loss fell over the window's second half (a spike or the drop
        # from initialization early in the window says nothing about the next τ steps). An
        # exponential with at least min_efolds = 1 e-fold per window never needs more (its
        # remaining fall is at most 1.9x its fall over the last 3/7 of an 8-point window).
        recent = smoothed[z.size // 2 :]
        lower = y_min - 2.0 * float(recent.max() - recent.min()) * spread * y_mag
        if y_min >= 0:
            lower = max(lower, 0.0)
        value = min(max(value, lower), y_max)

        step_width = width * t_mag  # may overflow to inf for absurd steps; b then reads -0.0
        b = -rate / step_width
        a = float(a_z * spread * y_mag * np.exp(-b * float(t[0])))
        c = to_loss(c_z)
        if not (math.isfinite(value) and math.isfinite(last_smoothed)):
            return Forecast.failed("fit failed (overflow)")
        return Forecast(ok=True, value=value, reason="", a=a, b=b, c=c, last_smoothed=last_smoothed)

    def _smooth(self, u: _Array, z: _Array, noise: float) -> _Array | None:
        """The smoothing spline through the inliers, evaluated at every ``u``; None on failure."""
        keep = self._inliers(u, z)
        tck = _spline(u[keep], z[keep], noise, self.spline_degree)
        return None if tck is None else _evaluate(tck, u)

    def _inliers(self, u: _Array, z: _Array) -> npt.NDArray[np.bool_]:
        """Mask of the points kept by the outlier filter (all of them on short series).

        A point is judged against the median of itself and its two neighbours on each side (a
        Hampel filter). Unlike the residual of a smoothing spline, which bends to follow a
        spike when its residual budget is the true noise level, a running median ignores an
        isolated spike, and it reproduces any monotone noise-free stretch exactly, so a steep
        but clean decay loses nothing. The first and last two points have no centered window
        and are never dropped. Each round drops the candidates with the largest deviations,
        within the remaining budget, then recomputes the medians over the points kept.
        """
        keep = np.ones(z.size, dtype=bool)
        if z.size < max(self.outlier_min_points, 5) or self.outlier_fraction == 0:
            return keep
        budget = max(1, math.floor(self.outlier_fraction * z.size))
        for _ in range(self.outlier_iterations):
            kept = np.flatnonzero(keep)
            if kept.size < 5:
                break
            window_median = np.median(sliding_window_view(z[kept], 5), axis=1)
            deviation = np.abs(z[kept[2:-2]] - window_median)
            # The residuals of a running median centre on zero: their robust standard
            # deviation is the scaled median of their absolute values.
            scale = _MAD_TO_SD * float(np.median(deviation))
            threshold = max(self.outlier_sds * scale, _ROUNDOFF)
            centers = kept[2:-2]
            candidate = (u[centers] <= 0.5) & (deviation > threshold)
            if not candidate.any():
                break
            worst_first = np.argsort(-deviation[candidate], kind="stable")
            drop = centers[candidate][worst_first][:budget]
            keep[drop] = False
            budget -= drop.size
            if budget <= 0:
                break
        return keep


def _constant(value: float) -> Forecast:
    """The forecast of a flat series: the loss stays where it is."""
    return Forecast(ok=True, value=value, reason="", a=0.0, b=0.0, c=value, last_smoothed=value)


def _noise_sd(u: _Array, z: _Array) -> float:
    """Per-point noise standard deviation of ``z``, estimated from the data alone.

    Each interior point is compared with the straight line through its two neighbours (a
    pseudo-residual that cancels any locally linear trend), rescaled to unit variance for iid
    noise, and the spread is a median absolute deviation so that spikes do not inflate it.
    Affine-equivariant in ``z``, which the scale-free smoothing relies on.
    """
    span = u[2:] - u[:-2]
    w_left = (u[2:] - u[1:-1]) / span
    w_right = 1.0 - w_left
    pseudo = (z[1:-1] - (w_left * z[:-2] + w_right * z[2:])) / np.sqrt(1.0 + w_left**2 + w_right**2)
    return float(_MAD_TO_SD * np.median(np.abs(pseudo - np.median(pseudo))))


def _spline(u: _Array, z: _Array, noise: float, degree: int) -> tuple[object, ...] | None:
    """FITPACK smoothing spline leaving a residual sum of squares of about ``n·noise²``.

    ``full_output`` makes FITPACK report problems as a code instead of a warning (warnings are
    process-global and this may run in several threads); codes 1-3 still return a usable
    spline, 10 and above mean invalid input.
    """
    tck, _fp, ier, _msg = splrep(
        u, z, k=degree, s=z.size * noise**2, xb=0.0, xe=1.0, full_output=True, quiet=True
    )
    if ier >= 10:
        return None
    return cast(tuple[object, ...], tuple(tck))


def _evaluate(tck: tuple[object, ...], u: _Array) -> _Array:
    return np.asarray(splev(u, tck), dtype=np.float64)


def _profile(u: _Array, y: _Array, rate: float) -> tuple[float, float, float]:
    """Best ``(a, c)`` for ``y ≈ a·exp(-rate·u) + c`` and its residual sum of squares.

    Closed-form simple linear regression on the regressor ``exp(-rate·u)``; when the regressor
    is constant to float precision, ``a = 0`` and ``c`` is the mean. The residual is summed
    here rather than taken from ``lstsq`` (which returns an empty residual when rank-deficient).
    """
    e = np.exp(-rate * u)
    e_mean = float(e.mean())
    y_mean = float(y.mean())
    d = e - e_mean
    sxx = float(d @ d)
    a = float(d @ (y - y_mean)) / sxx if sxx > 0 else 0.0
    c = y_mean - a * e_mean
    r = y - (a * e + c)
    return a, c, float(r @ r)


def _fit_exponential(u: _Array, y: _Array) -> tuple[float, float, float]:
    """Least-squares fit of ``y ≈ a·exp(-rate·u) + c`` with ``rate`` in e-folds per window.

    Args:
        u: positions in ``[0, 1]``, strictly increasing.
        y: values at ``u``.

    Returns:
        ``(rate, a, c)`` with ``_MIN_RATE <= rate <= _MAX_RATE``.
    """
    betas = np.linspace(math.log(_MIN_RATE), math.log(_MAX_RATE), _GRID_POINTS)
    basis = np.exp(-np.outer(u, np.exp(betas)))  # (n, grid)
    centered = basis - basis.mean(axis=0)
    y_centered = y - y.mean()
    sxx = np.einsum("ij,ij->j", centered, centered)
    sxy = centered.T @ y_centered
    slope = np.divide(sxy, sxx, out=np.zeros_like(sxy), where=sxx > 0)
    residual = y_centered[:, None] - centered * slope
    sse = np.einsum("ij,ij->j", residual, residual)
    best = int(np.argmin(sse))
    best_beta, best_sse = float(betas[best]), float(sse[best])

    lo = float(betas[max(best - 1, 0)])
    hi = float(betas[min(best + 1, _GRID_POINTS - 1)])
    refined = minimize_scalar(
        lambda beta: _profile(u, y, math.exp(beta))[2],
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-7},
    )
    if math.isfinite(float(refined.fun)) and float(refined.fun) <= best_sse:
        best_beta = float(refined.x)
    rate = math.exp(best_beta)
    a, c, _ = _profile(u, y, rate)
    return rate, a, c
