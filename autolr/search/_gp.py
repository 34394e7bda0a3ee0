"""Gaussian-process search over the normalized log-LR (AutoLRS's BO, done carefully).

The only module of autolr that imports torch, botorch and gpytorch; ``autolr.search`` loads
it lazily. Importing botorch changes global GPyTorch settings, so nothing else should.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import torch
from botorch.exceptions.errors import BotorchError, ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_matern_kernel_with_gamma_prior
from botorch.optim.closures import ForwardBackwardClosure
from botorch.optim.utils import get_parameters
from gpytorch.constraints import GreaterThan
from gpytorch.likelihoods import FixedNoiseGaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior
from linear_operator.utils.errors import NanError, NotPSDError

from autolr.errors import SearchError, SearchInputError
from autolr.search._common import (
    SearcherBase,
    argmin_first,
    farthest_point,
    space_filling_point,
    validate_bounds,
    validate_min_distance,
    validate_noise,
    validate_observations,
)

#: ``choose`` trusts the GP's posterior mean only from this many observations on: with
#: fewer, the fitted lengthscale and noise are guesswork and the raw argmin is as good.
MIN_OBSERVATIONS_FOR_MEAN = 3

#: L-BFGS-B options for the marginal-likelihood fit. Measured on 1-D fits with 3-20
#: points: botorch's default tolerance takes 35-45 iterations (up to 75); ftol=1e-6 cuts
#: that by a quarter and moves the LCB argmin by 0.002 on average (x_unit units). The cap
#: bounds the tail latency; reaching it is accepted by fit_gpytorch_mll (not a failure).
FIT_OPTIONS: dict[str, float] = {"ftol": 1e-6, "maxiter": 50}

#: Exceptions that mean "the GP cannot be fitted or evaluated on this data".
_FIT_ERRORS: tuple[type[BaseException], ...] = (
    ModelFittingError,
    BotorchError,
    NotPSDError,
    NanError,
    torch.linalg.LinAlgError,  # type: ignore[attr-defined]  # public, not re-exported in stubs
)

# One fit at a time per process: warnings filters and torch's global RNG (forked and seeded
# for determinism) are process-wide, so concurrent fits would corrupt each other's state.
_FIT_LOCK = threading.Lock()

_DTYPE = torch.float64
_SQRT5 = math.sqrt(5.0)


@contextmanager
def _isolated(seed: int) -> Iterator[None]:
    """Serialize, silence botorch/gpytorch warnings and seed torch without leaking state.

    The fit also runs on one intra-op thread (restored afterwards): its matrices are tiny,
    and on a busy CPU a second thread made decisions 10x slower (decision_latency.py).
    """
    with (
        _FIT_LOCK,
        warnings.catch_warnings(),
        torch.random.fork_rng(devices=[]),  # CPU only: never initialize CUDA
    ):
        warnings.simplefilter("ignore")
        torch.manual_seed(seed % (2**63))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def map_loss(model: SingleTaskGP) -> torch.Tensor:
    """The negative log posterior of the GP's hyperparameters, per observation.

    Exactly what ``ExactMarginalLogLikelihood`` gives for the model of ``build_model``
    (Matern-5/2 × outputscale, constant mean, Gaussian noise: learned σ² plus the known
    per-observation variances when given, priors), i.e.
    ``-(log N(y; m, K + diag(v) + σ²I) + Σ log prior) / n``, but written with a handful of dense
    torch ops on the n × n matrix instead of GPyTorch's lazy-tensor machinery. For the
    n ≤ ~30 points of one AutoLRS stage that machinery dominates the fit: this closure
    halves a decision's CPU time. ``test_map_loss_matches_gpytorch`` checks value and
    gradients against GPyTorch's own closure.

    Args:
        model: a ``SingleTaskGP`` from ``build_model`` (train inputs n × 1, in [0, 1]).

    Returns:
        A scalar tensor, differentiable w.r.t. the model's raw hyperparameters.
    """
    x = model.train_inputs[0].squeeze(-1)  # (n,)
    y = model.train_targets  # (n,), standardized by the outcome transform
    n = y.shape[-1]
    scaled = model.covar_module
    dist = (x.unsqueeze(-1) - x.unsqueeze(-2)).abs() / scaled.base_kernel.lengthscale.squeeze()
    matern = (1.0 + _SQRT5 * dist + (5.0 / 3.0) * dist * dist) * torch.exp(-_SQRT5 * dist)
    # (1,) for the learned noise alone, (n,) with known variances: diag either way
    noise = model.likelihood.noise.reshape(-1)
    cov = scaled.outputscale * matern + noise * torch.eye(n, dtype=x.dtype)
    chol = torch.linalg.cholesky(cov)
    resid = (y - model.mean_module.constant).unsqueeze(-1)  # (n, 1)
    white = torch.linalg.solve_triangular(chol, resid, upper=False)
    log_lik = (
        -0.5 * (white * white).sum()
        - torch.log(torch.diagonal(chol)).sum()
        - 0.5 * n * math.log(2.0 * math.pi)
    )
    priors: list[Any] = list(cast(Any, model).named_priors())  # (name, module, prior, value_of, _)
    for _, module, prior, value_of, _ in priors:
        log_lik = log_lik + prior.log_prob(value_of(module)).sum()
    loss: torch.Tensor = -log_lik / n
    return loss


def build_model(
    xs: Sequence[float], ys: Sequence[float], noise: Sequence[float] | None = None
) -> tuple[SingleTaskGP, ExactMarginalLogLikelihood]:
    """The unfitted 1-D GP and its marginal likelihood (float64).

    Args:
        xs: observed points in [0, 1], length n ≥ 1 (already normalized: no input transform).
        ys: finite outcomes, length n.
        noise: known variances of the outcomes (units of y²), length n, or None. The model
            adds a learned homoscedastic noise on top either way (same prior as botorch's
            default likelihood), so an underestimated variance cannot make it interpolate.
    """
    train_x = torch.tensor(xs, dtype=_DTYPE).unsqueeze(-1)  # n x 1
    train_y = torch.tensor(ys, dtype=_DTYPE).unsqueeze(-1)  # n x 1
    train_yvar = None if noise is None else torch.tensor(noise, dtype=_DTYPE).unsqueeze(-1)
    model = SingleTaskGP(
        train_X=train_x,
        train_Y=train_y,
        train_Yvar=train_yvar,
        # botorch >= 0.12 defaults to an RBF kernel with dimension-scaled priors; AutoLRS
        # uses Matern-5/2 (rougher, better for loss-vs-LR curves). Gamma(3, 6) puts the
        # lengthscale prior's mode at 1/3 of the log-LR range.
        covar_module=get_matern_kernel_with_gamma_prior(ard_num_dims=1),
        # Zero spread (constant y) is handled: Standardize then divides by 1.
        outcome_transform=Standardize(m=1),
    )
    if train_yvar is not None:
        # botorch fixes the noise to the (standardized) variances; learn extra noise on top
        prior = LogNormalPrior(loc=-4.0, scale=1.0)
        model.likelihood = FixedNoiseGaussianLikelihood(
            noise=model.likelihood.noise_covar.noise.detach().clone(),
            learn_additional_noise=True,
            noise_prior=prior,
            noise_constraint=GreaterThan(1e-4, transform=None, initial_value=prior.mode),
        )
    return model, ExactMarginalLogLikelihood(model.likelihood, model)


def _fit(
    xs: Sequence[float], ys: Sequence[float], noise: Sequence[float] | None = None
) -> SingleTaskGP:
    """Fit the GP's hyperparameters by MAP (L-BFGS-B through ``fit_gpytorch_mll``).

    Args:
        xs: observed points in [0, 1], length n ≥ 1.
        ys: finite outcomes, length n.
        noise: known outcome variances, length n, or None (see ``build_model``).

    Raises:
        SearchError: the fit failed (botorch gave up, or the kernel matrix is not PD).
    """
    try:
        model, mll = build_model(xs, ys, noise)
        parameters = get_parameters(mll, requires_grad=True)
        fit_gpytorch_mll(
            mll,
            closure=ForwardBackwardClosure(lambda: map_loss(model), parameters),
            # the same dict for the optimizer, so that gradients and parameters line up
            optimizer_kwargs={"parameters": parameters, "options": dict(FIT_OPTIONS)},
            # retry from hyperparameters drawn from the priors (seeded) if a Cholesky fails
            caught_exception_types=(NotPSDError, torch.linalg.LinAlgError),  # type: ignore[attr-defined]
        )
    except _FIT_ERRORS as err:
        raise SearchError(
            f"GP fit failed on {len(xs)} observations ({type(err).__name__}: {err}); "
            "fall back to RandomSearcher for this decision"
        ) from err
    return model


def _posterior(model: SingleTaskGP, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and standard deviation of the latent function, in the units of y.

    Args:
        model: a fitted GP.
        points: m x 1 tensor of points in [0, 1].

    Returns:
        Two tensors of shape (m,): mean and standard deviation.

    Raises:
        SearchError: the posterior cannot be computed or is not finite.
    """
    try:
        with torch.no_grad():
            posterior = model.posterior(points)
            mean = posterior.mean.squeeze(-1)
            std = posterior.variance.clamp_min(0.0).sqrt().squeeze(-1)
    except _FIT_ERRORS as err:
        raise SearchError(
            f"GP posterior failed ({type(err).__name__}: {err}); fall back to RandomSearcher"
        ) from err
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
        raise SearchError("GP posterior is not finite; fall back to RandomSearcher")
    return mean, std


class GPSearcher(SearcherBase):
    """Bayesian optimization of the log-LR with a GP and a lower confidence bound.

    ``propose`` works in two phases:

    1. **Space filling** while fewer than ``n_init`` points are observed: [0, 1] is cut
       into ``n_init`` equal strata and ``seed`` fixes a visiting order and one uniform
       point per stratum (a 1-D Latin hypercube); each call returns the design point of
       the first stratum, in that order, that holds no observation yet (redrawn inside the
       stratum when it is too close to a neighbour). A GP on one or two points is guesswork,
       so the first probes spread out instead.
    2. **GP + LCB**: a ``SingleTaskGP`` (float64, Matern-5/2 kernel with Gamma priors,
       standardized outcomes, MAP fit by ``fit_gpytorch_mll``) is fitted to all
       observations and ``LCB(x) = μ(x) − κ·σ(x)`` is minimized over a fixed grid of
       ``grid_size`` evenly spaced points of [0, 1], deterministic, with no random restarts
       (in 1-D a fine grid is exact enough and cheaper than gradient restarts). Grid points
       closer than ``min_distance`` to an observation are excluded so a near-duplicate is
       never re-probed; ties go to the smallest x. If the whole grid is excluded, the
       point farthest from every observation is returned.

    ``choose`` returns the observation with the lowest GP posterior mean (AutoLRS pitfall
    12): a single probe's forecast is noisy, and the mean borrows strength from the
    neighbouring probes, so it lands closer to the true best LR than the raw argmin (see
    ``test_choose_by_posterior_mean_beats_raw_argmin``).

    Everything is deterministic: the same observations, options and seed give
    bit-identical results. torch's RNG is seeded inside ``fork_rng`` (only used by
    botorch's retry after a failed fit), and one fit runs at a time per process because
    warning filters and the RNG are process-wide. A decision costs one GP fit: p50
    50-100 ms for 1-20 observations with one torch thread (``benchmarks/decision_latency.py``;
    on a shared CPU, more intra-op threads make it several times slower).

    Args:
        kappa: LCB exploration weight, in posterior standard deviations (≥ 0). 2.0 (about
            a 98% one-sided bound) balances refining the best region against checking
            uncertain ones within AutoLRS's ~10 probes. The reference implementation used
            κ = 1e6, which makes μ irrelevant: the probes become a fixed space-filling grid
            that the GP never steers (AutoLRS pitfall 1).
        n_init: number of space-filling proposals before the GP takes over (≥ 1).
        min_distance: minimum distance, in x_unit units, between a proposal and every
            observed point, in [0, 0.5). 0.02 of a 3-decade range is ~15% in LR.
        grid_size: number of grid points for the acquisition (≥ 2); 512 resolves 0.002
            of the range (~1.4% in LR over 3 decades).

    Raises:
        SearchInputError: an option out of range.

    Example:
        >>> searcher = GPSearcher(kappa=2.0, n_init=3)
        >>> x_unit: list[float] = []
        >>> y: list[float] = []
        >>> for _ in range(8):
        ...     x_unit.append(searcher.propose(x_unit, y, seed=0))
        ...     y.append((x_unit[-1] - 0.3) ** 2)  # a valley at x_unit = 0.3
        >>> best = x_unit[searcher.choose(x_unit, y)]
        >>> abs(best - 0.3) < 0.05
        True
    """

    def __init__(
        self,
        *,
        kappa: float = 2.0,
        n_init: int = 3,
        min_distance: float = 0.02,
        grid_size: int = 512,
    ) -> None:
        if not (isinstance(kappa, int | float) and math.isfinite(kappa) and kappa >= 0):
            raise SearchInputError(f"kappa={kappa!r} must be a finite number >= 0")
        if isinstance(n_init, bool) or not isinstance(n_init, int) or n_init < 1:
            raise SearchInputError(f"n_init={n_init!r} must be an integer >= 1")
        if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 2:
            raise SearchInputError(f"grid_size={grid_size!r} must be an integer >= 2")
        self.kappa = float(kappa)
        self.n_init = n_init
        self.min_distance = validate_min_distance(min_distance)
        self.grid_size = grid_size

    def __repr__(self) -> str:
        return (
            f"GPSearcher(kappa={self.kappa!r}, n_init={self.n_init!r}, "
            f"min_distance={self.min_distance!r}, grid_size={self.grid_size!r})"
        )

    def propose(
        self,
        x_unit: Sequence[float],
        y: Sequence[float],
        *,
        seed: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        noise: Sequence[float] | None = None,
    ) -> float:
        """The next point to probe: space filling first, then the LCB minimizer.

        Args:
            x_unit: observed points in [0, 1], length n (may be empty).
            y: their finite outcomes, lower is better, length n.
            seed: fixes the space-filling design and botorch's fit retries.
            bounds: the sub-interval of [0, 1] to search (a warm-started stage searches
                around the last chosen LR); observations may lie outside it.
            noise: known variances of ``y`` (length n), e.g. each forecast's squared standard
                error, or None. The GP then smooths over observations that their own noise
                cannot tell apart instead of interpolating them.

        Returns:
            A point in ``bounds``, at least ``min_distance`` from every observation whenever
            the grid (or, while space filling, [0, 1]) has such a point.

        Raises:
            SearchInputError: invalid observations or bounds.
            SearchError: the GP could not be fitted or evaluated (use RandomSearcher).
        """
        return self.decide(x_unit, y, seed=seed, bounds=bounds, noise=noise)[0]

    def decide(
        self,
        x_unit: Sequence[float],
        y: Sequence[float],
        *,
        seed: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        noise: Sequence[float] | None = None,
    ) -> tuple[float, float]:
        """The next point to probe and the most it could still gain, from one GP fit.

        The gain is ``min(μ at the observations) − min(LCB over the allowed grid)``: by
        the GP's own (κ-optimistic) estimate, how much lower than the best probe so far
        the next probe could land. The controller ends a stage's search when the gain is
        small (``TunerConfig.adaptive_probes``). It is ``inf`` while space filling.

        Returns:
            ``(x_next, gain)`` with ``gain >= 0`` in the units of ``y``.

        Raises:
            SearchInputError: invalid observations or bounds.
            SearchError: the GP could not be fitted or evaluated.
        """
        xs, ys = validate_observations(x_unit, y)
        vs = validate_noise(noise, len(xs))
        lo, hi = validate_bounds(bounds)
        if len(xs) < self.n_init:
            x = space_filling_point(
                xs, n_strata=self.n_init, min_distance=self.min_distance, seed=seed
            )
            return lo + x * (hi - lo), math.inf
        grid = torch.linspace(lo, hi, self.grid_size, dtype=_DTYPE)  # (grid_size,)
        observed = torch.tensor(xs, dtype=_DTYPE)  # (n,)
        nearest = (grid.unsqueeze(-1) - observed).abs().amin(dim=-1)  # (grid_size,)
        allowed = nearest >= self.min_distance
        if not bool(allowed.any()):
            return min(hi, max(lo, farthest_point(xs))), 0.0
        with _isolated(seed):
            model = _fit(xs, ys, vs)
            mean, std = _posterior(model, grid.unsqueeze(-1))
            observed_mean, _ = _posterior(model, observed.unsqueeze(-1))
        lcb = (mean - self.kappa * std).masked_fill(~allowed, math.inf)
        best = int(torch.argmin(lcb))  # first minimum: ties go to the smallest x
        gain = max(0.0, float(observed_mean.min()) - float(lcb[best]))
        return min(hi, max(lo, float(grid[best]))), gain

    def choose(
        self, x_unit: Sequence[float], y: Sequence[float], *, noise: Sequence[float] | None = None
    ) -> int:
        """Index of the observation with the lowest GP posterior mean.

        With fewer than ``MIN_OBSERVATIONS_FOR_MEAN`` (3) observations, or when the GP
        cannot be fitted, this is the raw argmin of ``y``; ties go to the first index.

        Args:
            x_unit: observed points in [0, 1], length n ≥ 1.
            y: their finite outcomes, lower is better, length n.
            noise: known variances of ``y``, length n, or None (see ``propose``).

        Returns:
            An index in ``range(n)``.

        Raises:
            SearchInputError: invalid or empty observations.
        """
        xs, ys = validate_observations(x_unit, y)
        vs = validate_noise(noise, len(xs))
        if len(xs) < MIN_OBSERVATIONS_FOR_MEAN:
            return argmin_first(ys)
        try:
            with _isolated(0):
                model = _fit(xs, ys, vs)
                mean, _ = _posterior(model, torch.tensor(xs, dtype=_DTYPE).unsqueeze(-1))
        except SearchError:
            return argmin_first(ys)  # documented fallback: the raw outcomes are still valid
        return argmin_first(mean.tolist())

    def posterior(
        self,
        x_unit: Sequence[float],
        y: Sequence[float],
        at: Sequence[float],
        *,
        noise: Sequence[float] | None = None,
    ) -> tuple[list[float], list[float]]:
        """The fitted GP's posterior mean and standard deviation at the points ``at``.

        The same model ``choose`` fits (MAP hyperparameters, seed 0), exposed so that tools
        such as the server's dashboard can draw what the search believed without reaching
        into this module's internals.

        Args:
            x_unit: observed points in [0, 1], length n ≥ 1.
            y: their finite outcomes, length n.
            at: points in [0, 1] to evaluate, length m.
            noise: known variances of ``y``, length n, or None (see ``propose``).

        Returns:
            ``(mean, std)``: two lists of length m, in the units of ``y``.

        Raises:
            SearchInputError: invalid observations, or a point of ``at`` outside [0, 1].
            SearchError: the GP could not be fitted or evaluated.

        Example:
            >>> mean, std = GPSearcher().posterior([0.1, 0.5, 0.9], [1.0, 0.2, 1.1], [0.5])
            >>> abs(mean[0] - 0.2) < 0.3 and std[0] >= 0.0
            True
        """
        xs, ys = validate_observations(x_unit, y)
        vs = validate_noise(noise, len(xs))
        if not xs:
            raise SearchInputError("posterior needs at least one observation, got none")
        points = [float(v) for v in at]
        for i, v in enumerate(points):
            if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                raise SearchInputError(f"at[{i}]={v!r} is outside [0, 1]")
        with _isolated(0):
            model = _fit(xs, ys, vs)
            mean, std = _posterior(model, torch.tensor(points, dtype=_DTYPE).unsqueeze(-1))
        return [float(v) for v in mean], [float(v) for v in std]
