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
from typing import Any, Literal, cast

import numpy as np
import torch
from botorch.exceptions.errors import BotorchError, ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_matern_kernel_with_gamma_prior
from botorch.optim.closures import ForwardBackwardClosure
from botorch.optim.utils import get_parameters, get_parameters_and_bounds
from gpytorch import settings as gpytorch_settings
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
from autolr.search._dense import (
    DenseGP,
    DenseSpec,
    FitCache,
    GammaTerms,
    _DenseFitError,
    one_blas_thread,
)
from autolr.search._dense import fit as dense_fit

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

#: How ``GPSearcher`` fits and queries its GP. ``"dense"`` (default): closed-form NumPy
#: (``autolr.search._dense``), ~8x less CPU per decision, equal to rounding; ``"gpytorch"``:
#: BoTorch's ``fit_gpytorch_mll`` with an autograd closure and GPyTorch's posterior, the
#: reference (and the pre-issue-19 path, kept for ``benchmarks/decision_latency.py --compare``).
Engine = Literal["dense", "gpytorch"]
ENGINES: tuple[Engine, ...] = ("dense", "gpytorch")

#: Dense fits of this process, reused when a request fits the same observations twice.
FIT_CACHE = FitCache()


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


_SPEC_LOCK = threading.Lock()
_SPECS: dict[bool, DenseSpec] = {}


def dense_spec(noisy: bool) -> DenseSpec:
    """``_read_spec``, once per process and variant (concurrent first decisions wait for it:
    building BoTorch's model holds the GIL for tens of milliseconds)."""
    with _SPEC_LOCK:
        if noisy not in _SPECS:
            _SPECS[noisy] = _read_spec(noisy)
        return _SPECS[noisy]


def _read_spec(noisy: bool) -> DenseSpec:
    """The definition of ``build_model``'s GP, read from a BoTorch model, for the dense engine.

    Priors, constraints, starting values, parameter order and numeric floors all come from
    BoTorch/GPyTorch here, so the closed form cannot drift from the model it mirrors: an
    unexpected structure (a new parameter, a different transform) raises ``AssertionError``.

    Args:
        noisy: known variances are given (the fixed-noise likelihood with learned extra noise).
    """
    with _isolated(0):
        model, mll = build_model([0.25, 0.75], [0.0, 1.0], [0.1, 0.1] if noisy else None)
        parameters, bounds = get_parameters_and_bounds(mll)
    trainable = [(name, p) for name, p in parameters.items() if p.requires_grad]
    expected = ("raw_noise", "raw_constant", "raw_outputscale", "raw_lengthscale")
    names = tuple(name.rsplit(".", 1)[-1] for name, _ in trainable)
    assert names == expected, f"unexpected GP parameters {names}"
    noise_name = trainable[0][0]
    lower, upper = bounds[noise_name]
    limits: list[tuple[float, float]] = [
        (
            float(lower) if lower is not None else -math.inf,
            float(upper) if upper is not None else math.inf,
        )
    ]
    for name, _ in trainable[1:]:
        assert name not in bounds or all(
            b is None or not math.isfinite(float(b)) for b in bounds[name]
        ), f"{name} is bounded"
        limits.append((-math.inf, math.inf))
    kernel = model.covar_module
    softplus = cast(Any, kernel.raw_outputscale_constraint)._transform
    length_softplus = cast(Any, kernel.base_kernel.raw_lengthscale_constraint)._transform
    assert isinstance(softplus, torch.nn.Softplus) and float(softplus.beta) == 1.0
    assert isinstance(length_softplus, torch.nn.Softplus)
    assert float(length_softplus.threshold) == float(softplus.threshold)
    noise_module = (
        cast(Any, model.likelihood).second_noise_covar if noisy else model.likelihood.noise_covar
    )
    assert cast(Any, noise_module.raw_noise_constraint)._transform is None
    noise_prior = cast(Any, noise_module).noise_prior
    length_prior = cast(Any, kernel.base_kernel).lengthscale_prior
    scale_prior = cast(Any, kernel).outputscale_prior
    return DenseSpec(
        x0=cast(
            tuple[float, float, float, float],
            tuple(float(p.detach().reshape(-1)[0]) for _, p in trainable),
        ),
        bounds=tuple(limits),
        noise_float32=trainable[0][1].dtype == torch.float32,
        noise_prior=(float(noise_prior.loc), float(noise_prior.scale)),
        outputscale_prior=_gamma_terms(scale_prior),
        lengthscale_prior=_gamma_terms(length_prior),
        softplus_threshold=float(softplus.threshold),
        min_stdv=float(cast(Any, model.outcome_transform)._min_stdv),
        min_variance=float(gpytorch_settings.min_variance.value(_DTYPE)),
        min_fixed_noise=float(gpytorch_settings.min_fixed_noise.value(_DTYPE)),
        log_f32=_log_f32,
    )


def _log_f32(value: float) -> float:
    """torch's float32 natural log of ``value`` (rounded to float32 first)."""
    return float(torch.tensor(value, dtype=torch.float32).log())


def _gamma_terms(prior: Any) -> GammaTerms:
    """A GPyTorch ``GammaPrior``'s parameters and constant terms, computed by torch itself."""
    a, b = prior.concentration.detach(), prior.rate.detach()
    return GammaTerms(
        concentration=float(a),
        rate=float(b),
        xlogy_ab=float(torch.xlogy(a, b)),
        lgamma_a=float(torch.lgamma(a)),
    )


def _dense_model(xs: list[float], ys: list[float], vs: list[float] | None) -> DenseGP | None:
    """The dense engine's fit (from ``FIT_CACHE`` when these inputs were fitted lately).

    None when the dense engine leaves this case to BoTorch (``_DenseFitError``).
    """
    key = (tuple(xs), tuple(ys), None if vs is None else tuple(vs))
    model = FIT_CACHE.get(key)
    if model is None:
        try:
            model = dense_fit(xs, ys, vs, dense_spec(vs is not None), FIT_OPTIONS)
        except _DenseFitError:
            return None
        FIT_CACHE.put(key, model)
    return model


def _posterior_at(
    engine: Engine,
    xs: list[float],
    ys: list[float],
    vs: list[float] | None,
    seed: int,
    *points: np.ndarray[Any, np.dtype[np.float64]],
) -> list[tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]]:
    """Fit the GP once and return its posterior (mean, std) at each array of ``points``.

    The dense engine first; the GPyTorch engine when asked for, or when the dense one leaves
    the case to it (then exactly the pre-issue-19 fit, botorch's seeded retries included).

    Raises:
        SearchError: the GP could not be fitted or evaluated, or is not finite.
    """
    if engine == "dense":
        with one_blas_thread():
            dense = _dense_model(xs, ys, vs)
            out = [] if dense is None else [dense.posterior(p) for p in points]
        if dense is not None:
            if not all(np.isfinite(m).all() and np.isfinite(s).all() for m, s in out):
                raise SearchError("GP posterior is not finite; fall back to RandomSearcher")
            return out
    with _isolated(seed):
        model = _fit(xs, ys, vs)
        found = [_posterior(model, torch.from_numpy(p).unsqueeze(-1)) for p in points]
    return [(m.numpy(), s.numpy()) for m, s in found]


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
    bit-identical results. The default dense engine (``engine="dense"``, see ``Engine``)
    fits BoTorch's model in closed-form NumPy, draws nothing and runs without a lock, and a
    fit of the same observations is reused within a request (``FIT_CACHE``: ``choose`` at a
    stage's end reuses ``decide``'s). The GPyTorch engine (``engine="gpytorch"``, and the
    dense engine's fallback) seeds torch's RNG inside ``fork_rng`` (only used by botorch's
    retry after a failed fit) and fits one at a time per process, because warning filters and
    the RNG are process-wide. A decision costs one GP fit: 8x less CPU with the dense engine
    (``benchmarks/decision_latency.py --compare``: 47 against 5.8 decisions per CPU-second on
    a machine at load 9; 30 for the GPyTorch engine on a quiet one).

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
        engine: how the GP is fitted and queried (``Engine``): ``"dense"``, closed-form
            NumPy on BoTorch's model, equal to ``"gpytorch"`` (BoTorch's own fit and
            GPyTorch's posterior) to rounding at about a tenth of the CPU time.

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
        engine: Engine = "dense",
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
        if engine not in ENGINES:
            raise SearchInputError(f"engine={engine!r} must be one of {ENGINES}")
        self.grid_size = grid_size
        self.engine: Engine = engine

    def __repr__(self) -> str:
        return (
            f"GPSearcher(kappa={self.kappa!r}, n_init={self.n_init!r}, "
            f"min_distance={self.min_distance!r}, grid_size={self.grid_size!r}, "
            f"engine={self.engine!r})"
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
        # torch's linspace, as before the dense engine: the same grid to the last bit
        grid = torch.linspace(lo, hi, self.grid_size, dtype=_DTYPE).numpy()  # (grid_size,)
        observed = np.array(xs, dtype=np.float64)  # (n,)
        nearest = np.abs(grid[:, None] - observed[None, :]).min(axis=-1)  # (grid_size,)
        allowed = nearest >= self.min_distance
        if not bool(allowed.any()):
            return min(hi, max(lo, farthest_point(xs))), 0.0
        (mean, std), (observed_mean, _) = _posterior_at(
            self.engine, xs, ys, vs, seed, grid, observed
        )
        lcb = np.where(allowed, mean - self.kappa * std, math.inf)
        best = int(np.argmin(lcb))  # first minimum: ties go to the smallest x
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
            ((mean, _),) = _posterior_at(self.engine, xs, ys, vs, 0, np.array(xs))
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
        ((mean, std),) = _posterior_at(self.engine, xs, ys, vs, 0, np.array(points))
        return [float(v) for v in mean], [float(v) for v in std]
