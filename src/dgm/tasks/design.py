"""Generative design: search a model's latent space for decodings that score high on a
black-box objective, by Bayesian optimisation against random search.

The search space is the box prior mean ± ``width`` prior standard deviations of an
``Encodable`` model's latent space (a VAE's z). An objective maps codes to numbers through
the decoder (``represent.decode_mean``): the probability that dgm's feature classifier
(``dgm.evaluate.features``) gives a target class, or closeness −|m − M| of the pixel mass
m (mean intensity on [0, 1]) to a target M. Bayesian optimisation (BoTorch) draws
``initial`` points at random, then fits a Gaussian process (``SingleTaskGP``, Matérn-5/2
with automatic relevance determination, inputs scaled to the unit cube, outputs
standardised) and takes the point of maximal expected improvement (computed in log space,
``LogExpectedImprovement``, whose maximiser is EI's); random search draws every point
uniformly from the same box, with the same first points. A class probability is modelled
on the logit scale (``warp_for``): on its own scale it is near 0 over most of the box, the
GP sees a flat function, and a run whose first points all miss the class never leaves it.
Both get the same number of evaluations; the record is the best value found after each evaluation.

References:
    Gómez-Bombarelli et al. 2018, Automatic Chemical Design Using a Data-Driven Continuous
    Representation of Molecules, arXiv:1610.02415.
    Jones, Schonlau & Welch 1998, Efficient Global Optimization of Expensive Black-Box
    Functions, J. Global Optim. 13.
    Balandat et al. 2020, BoTorch: A Framework for Efficient Monte-Carlo Bayesian
    Optimization, arXiv:1910.06403.
    Ament et al. 2023, Unexpected Improvements to Expected Improvement for Bayesian
    Optimization, arXiv:2310.20708.

Example:
    >>> import torch
    >>> bounds = torch.tensor([[-1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    >>> result = random_search(lambda z: -z.pow(2).sum(-1), bounds, 5, seed=0)
    >>> result.z.shape, bool((result.best_curve.diff() >= 0).all())
    (torch.Size([5, 2]), True)
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dgm.config import option
from dgm.model import GenerativeModel
from dgm.tasks.represent import check_encodable, decode_mean

Objective = Callable[[Tensor], Tensor]  # codes (n, d) float64 -> values (n,) float64
MAX_DIMS = 64  # GP-based search needs a small latent space
WIDTH = 3.0  # the box: prior mean ± 3 prior standard deviations
INITIAL = 5  # random points before the first GP fit
RESTARTS = 4  # L-BFGS-B starts of the acquisition optimiser
RAW_SAMPLES = 128  # random points it picks those starts from


@dataclasses.dataclass
class DesignOptions:
    """The searches of ``dgm design`` (field comments are the command's help)."""

    # class:K (dgm's classifier's probability of class K) or mass:M (mean pixel intensity
    # near M in [0, 1])
    objective: str = option(metavar="OBJECTIVE")
    evaluations: int = 30  # objective calls per search
    seeds: int = 3  # searches of each kind, seeds 0..S-1
    initial: int = INITIAL  # random points before the first GP
    width: float = WIDTH  # box: prior mean ± WIDTH prior std
    # grid of the best designs, BO's row over random search's (default: DIR/design.png)
    out: Path | None = option(None, metavar="FILE")


@dataclasses.dataclass
class SearchResult:
    """The points a search evaluated, in order: ``z`` (N, d) and ``values`` (N,), float64."""

    z: Tensor
    values: Tensor

    @property
    def best_curve(self) -> Tensor:
        """Best value after each evaluation, (N,): non-decreasing."""
        return self.values.cummax(0).values

    @property
    def best_value(self) -> float:
        return float(self.values.max())

    @property
    def best_z(self) -> Tensor:
        """The point of the best value, (d,)."""
        return self.z[self.values.argmax()]


def latent_box(model: GenerativeModel, width: float = WIDTH) -> Tensor:
    """Bounds (2, d) of the search box, prior mean ± ``width`` prior std per flattened
    latent dimension, float64 on the CPU (a mixture prior gives its overall mean and std)."""
    check_encodable(model, "latent-space design")
    if not width > 0:
        raise ValueError(f"the box width must be positive, got {width}")
    prior = model.prior()  # type: ignore[attr-defined]
    d = prior.event_shape.numel()
    if d > MAX_DIMS:
        raise ValueError(
            f"Bayesian optimisation needs a small latent space (at most {MAX_DIMS} dimensions); "
            f"this model's has {d}: use a model with a low-dimensional code, e.g. a VAE "
            "(--latent-dim 2 to 16)"
        )
    mean, std = prior.mean.reshape(-1), prior.variance.sqrt().reshape(-1)  # (d,) each
    return torch.stack([mean - width * std, mean + width * std]).double().cpu()  # (2, d)


def _check_bounds(bounds: Tensor, evaluations: int) -> None:
    if bounds.dim() != 2 or len(bounds) != 2 or not bool((bounds[1] > bounds[0]).all()):
        raise ValueError(f"bounds have shape {tuple(bounds.shape)}: expected (2, d), low < high")
    if evaluations < 1:
        raise ValueError(f"evaluations must be at least 1, got {evaluations}")


def _uniform(bounds: Tensor, n: int, generator: torch.Generator) -> Tensor:
    u = torch.rand(n, bounds.shape[1], generator=generator, dtype=torch.float64)  # (n, d)
    return bounds[0] + u * (bounds[1] - bounds[0])


def _evaluate(objective: Objective, z: Tensor) -> Tensor:
    values = torch.as_tensor(objective(z)).double().reshape(-1).cpu()
    if values.shape != (len(z),) or not bool(torch.isfinite(values).all()):
        raise ValueError(
            f"the objective gave {tuple(values.shape)} values (finite: "
            f"{bool(torch.isfinite(values).all())}), expected {len(z)} finite numbers"
        )
    return values


def random_search(
    objective: Objective, bounds: Tensor, evaluations: int, *, seed: int = 0
) -> SearchResult:
    """``evaluations`` points drawn uniformly from the box ``bounds`` (2, d)."""
    bounds = bounds.double().cpu()
    _check_bounds(bounds, evaluations)
    z = _uniform(bounds, evaluations, torch.Generator().manual_seed(seed))  # (N, d)
    return SearchResult(z, _evaluate(objective, z))


def bayes_opt(
    objective: Objective,
    bounds: Tensor,
    evaluations: int,
    *,
    initial: int = INITIAL,
    seed: int = 0,
    warp: Callable[[Tensor], Tensor] | None = None,
) -> SearchResult:
    """Bayesian optimisation with BoTorch: ``initial`` uniform points (those of
    ``random_search`` with the same seed), then one point per step maximising the log
    expected improvement of a GP refitted to all values so far (hyperparameters by
    maximum marginal likelihood). A step whose GP fit fails draws a uniform point.
    ``warp``: an increasing map of the values that the GP models instead of the values
    (e.g. ``logit`` for a probability that sits near 0 over most of the space); the best
    point is the same on either scale."""
    with warnings.catch_warnings():  # gpytorch's torch.jit.script use, deprecated in torch
        warnings.simplefilter("ignore", DeprecationWarning)
        from botorch.acquisition import LogExpectedImprovement
        from botorch.exceptions import BotorchWarning, ModelFittingError
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms import Standardize
        from botorch.optim import optimize_acqf
        from gpytorch.mlls import ExactMarginalLogLikelihood

    bounds = bounds.double().cpu()
    _check_bounds(bounds, evaluations)
    if initial < 1:
        raise ValueError(f"initial must be at least 1, got {initial}")
    gen = torch.Generator().manual_seed(seed)
    z = _uniform(bounds, min(initial, evaluations), gen)  # (n0, d)
    values = _evaluate(objective, z)
    low, span = bounds[0], bounds[1] - bounds[0]
    d = bounds.shape[1]
    unit = torch.stack([torch.zeros(d), torch.ones(d)]).double()  # (2, d): the GP's box
    while len(z) < evaluations:
        fit = values if warp is None else warp(values)  # (n,): what the GP models
        x, y = (z - low) / span, fit.unsqueeze(-1)  # (n, d), (n, 1)
        with warnings.catch_warnings(), torch.random.fork_rng():
            warnings.simplefilter("ignore", BotorchWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            torch.manual_seed(seed * 100_003 + len(z))  # the optimiser's raw samples
            try:
                gp = SingleTaskGP(x, y, outcome_transform=Standardize(m=1))
                fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
                acq = LogExpectedImprovement(gp, best_f=fit.max())
                point, _ = optimize_acqf(
                    acq, unit, q=1, num_restarts=RESTARTS, raw_samples=RAW_SAMPLES
                )
                nxt = low + point.detach().reshape(1, d) * span  # (1, d)
            except ModelFittingError:
                nxt = _uniform(bounds, 1, gen)
        z = torch.cat([z, nxt])
        values = torch.cat([values, _evaluate(objective, nxt)])
    return SearchResult(z, values)


def compare(
    objective: Objective,
    bounds: Tensor,
    evaluations: int,
    seeds: int,
    *,
    initial: int = INITIAL,
    warp: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, list[SearchResult]]:
    """Bayesian optimisation (its GP on ``warp`` of the values, if given) and random search
    with seeds 0..seeds-1 each: {"bo": [...], "random": [...]}."""
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    return {
        "bo": [
            bayes_opt(objective, bounds, evaluations, initial=initial, seed=s, warp=warp)
            for s in range(seeds)
        ],
        "random": [random_search(objective, bounds, evaluations, seed=s) for s in range(seeds)],
    }


def mean_curve(results: list[SearchResult]) -> Tensor:
    """Best value after each evaluation, averaged over the runs: (N,)."""
    return torch.stack([r.best_curve for r in results]).mean(0)


# -- objectives over decoded samples -----------------------------------------------------


PROB_FLOOR = 1e-6  # probabilities are clamped to [floor, 1 − floor] before the logit


def logit(p: Tensor) -> Tensor:
    """log(p / (1 − p)) of probabilities clamped to [``PROB_FLOOR``, 1 − ``PROB_FLOOR``]
    (a float32 softmax resolves no finer): the scale on which Bayesian optimisation models
    a classifier's probability, which sits near 0 over most of a latent space."""
    p = p.clamp(PROB_FLOOR, 1 - PROB_FLOOR)
    return p.log() - (-p).log1p()


def warp_for(kind: str) -> Callable[[Tensor], Tensor] | None:
    """The map of an objective's values that the GP models: ``logit`` for ``class``
    (probabilities: near 0 almost everywhere, so on their own scale a GP sees a flat
    function and expected improvement has nothing to follow), none for ``mass``."""
    return logit if kind == "class" else None


def parse_objective(text: str) -> tuple[str, float]:
    """``class:K`` or ``mass:M`` -> ("class", K) or ("mass", M)."""
    kind, _, value = text.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if kind not in ("class", "mass") or not math.isfinite(number):
        raise ValueError(
            f"--objective {text!r}: give class:K (the classifier's probability of class K) "
            "or mass:M (pixel mass, the mean intensity, near M in [0, 1])"
        )
    if kind == "class" and (number != int(number) or number < 0):
        raise ValueError(f"--objective {text!r}: the class must be an integer >= 0")
    if kind == "mass" and not 0 <= number <= 1:
        raise ValueError(f"--objective {text!r}: the target mass M must lie in [0, 1]")
    return kind, number


def check_designable(model: GenerativeModel) -> None:
    """Refuse a model whose latent space cannot be searched: not ``Encodable``, or one that
    needs a condition c for every decoding."""
    check_encodable(model, "latent-space design")
    if model.conditional and not model.conditioning.optional:
        raise ValueError(
            f"design decodes z alone; {type(model).__name__} needs a condition c for every "
            "decoding: train it without one (or with --condition-dropout > 0)"
        )


def objective_for(
    run: Any, model: GenerativeModel, text: str, value_range: Sequence[float]
) -> tuple[Objective, str]:
    """The objective ``text`` (``class:K`` or ``mass:M``, ``parse_objective``) over the
    decodings of ``model``, for the run ``run`` (a ``dgm.run_dir.Run``: its data name the
    classifier of ``class:K``), and a line saying what it measures."""
    kind, value = parse_objective(text)
    if kind != "class":
        what = f"-|pixel mass - {value:g}| of decoded z (mean intensity on [0, 1])"
        return mass_objective(model, value, value_range), what
    from dgm.evaluate.features import feature_classifier

    data = run.data("train")
    classes = data.info.num_classes
    if classes and not int(value) < classes:  # before the classifier trains, if it must
        raise ValueError(f"--objective {text}: {data.name} has classes 0..{classes - 1}")
    clf = feature_classifier(data.name, run.data_config.root)
    k = clf.net.head.out_features
    if not int(value) < k:
        raise ValueError(f"--objective {text}: the classifier has classes 0..{k - 1}")
    what = f"p(class {int(value)} | decoded z) under the {clf.feature_space} classifier"
    return class_objective(model, clf.net, int(value), value_range), what


def report_points(evaluations: int, initial: int = INITIAL) -> list[int]:
    """About five evaluation counts, 1..evaluations, at which a search's curve is shown
    (the first, the end of the random start, the last)."""
    step = max(1, evaluations // 5)
    ticks = set(range(step, evaluations + 1, step))
    return sorted({1, min(initial, evaluations), evaluations} | ticks)


def _decoder(
    model: GenerativeModel, value_range: tuple[float, float] | None
) -> Callable[[Tensor], Tensor]:
    """codes (n, d) -> decoded means on [0, 1] (float32, CPU), from the data's range."""
    prior = model.prior()  # type: ignore[attr-defined]
    low, high = value_range if value_range is not None else (0.0, 1.0)

    def decode(z: Tensor) -> Tensor:
        z = z.reshape(len(z), *prior.event_shape).to(model.device, model.dtype)
        x = decode_mean(model, z).float().cpu()
        return ((x - low) / (high - low)).clamp(0, 1)

    return decode


def class_objective(
    model: GenerativeModel,
    classifier: torch.nn.Module,
    target: int,
    value_range: tuple[float, float] | None = None,
) -> Objective:
    """z -> p(class ``target`` | decode(z)) under ``classifier`` (images on [0, 1] ->
    logits, e.g. ``feature_classifier(dataset).net``)."""
    decode = _decoder(model, value_range)
    classifier = classifier.eval()
    device = next(classifier.parameters(), torch.empty(0)).device

    @torch.no_grad()
    def objective(z: Tensor) -> Tensor:
        logits = classifier(decode(z).to(device)).cpu()  # (n, K)
        if not 0 <= target < logits.shape[-1]:
            raise ValueError(
                f"class {target} is outside the classifier's 0..{logits.shape[-1] - 1}"
            )
        return logits.softmax(-1)[:, target].double()

    return objective


def mass_objective(
    model: GenerativeModel, target: float, value_range: tuple[float, float] | None = None
) -> Objective:
    """z -> −|m − target|, m the mean intensity of decode(z) on [0, 1] (best: 0)."""
    decode = _decoder(model, value_range)

    def objective(z: Tensor) -> Tensor:
        return -(decode(z).flatten(1).mean(1).double() - target).abs()

    return objective
