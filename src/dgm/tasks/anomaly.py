"""Outlier detection with a density: score each x by how unlikely the model finds it.

The raw score is −log p(x) in nats (the negative ELBO for ``LOWER_BOUND`` models); AUROC
and AUPRC (scikit-learn) measure how well it separates in-distribution (negative) from
out-of-distribution (positive) examples. Deep likelihood models are known to fail here:
trained on Fashion-MNIST they give MNIST a *higher* likelihood (AUROC ≈ 0.1, Nalisnick
et al. 2019), because simple, smooth images are likely under any image model. Two remedies:

- the likelihood ratio (Ren et al. 2019): log p_model(x) − log p_background(x), where the
  background model saw only population-level statistics (trained on inputs with a share
  of pixels mutated, ``perturb``) and so carries the same "complexity" term, which cancels
  (on the command line: ``dgm anomaly DIR --write-background-data bg.pt --perturb 0.2``,
  then ``dgm train MODEL --data tensors --data-root bg.pt --out BG``, ``--background BG``);
- the typicality test (Nalisnick et al. 2019): |−log p(x) − Ĥ| with Ĥ the mean training
  NLL (the entropy estimate): the typical set, not the mode, holds the data. For a batch
  of M inputs the statistic is |mean −log p − Ĥ|, flagged beyond a bootstrap threshold.

References:
    Nalisnick et al. 2019, Do Deep Generative Models Know What They Don't Know?,
    arXiv:1810.09136.
    Ren et al. 2019, Likelihood Ratios for Out-of-Distribution Detection, arXiv:1906.02845.
    Nalisnick et al. 2019, Detecting Out-of-Distribution Inputs to Deep Generative Models
    Using Typicality, arXiv:1906.02994.

Example:
    >>> import torch
    >>> nll_in, nll_out = torch.tensor([1.0, 2.0]), torch.tensor([5.0, 6.0])
    >>> auroc_auprc(nll_in, nll_out)
    (1.0, 1.0)
    >>> typicality_scores(torch.tensor([0.5, 1.5, 9.0]), entropy=1.0).tolist()
    [0.5, 0.5, 8.0]
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.distributions import constraints

from dgm.config import option
from dgm.model import DiscreteAutoregressive, GenerativeModel, Likelihood

BATCH_SIZE = 250  # examples scored per forward pass: small enough for 28x28 conv models


@dataclasses.dataclass
class AnomalyOptions:
    """What ``dgm anomaly`` scores: the sets, their sizes, the background run (field
    comments are the command's help)."""

    in_data: str | None = option(None, flag="--in", metavar="NAME")  # default: the run's data
    # out-of-distribution dataset, e.g. mnist_subset
    out_data: str | None = option(None, flag="--ood", metavar="NAME")
    # folder with the --ood dataset's files (e.g. the MNIST IDX files for --ood mnist)
    out_root: str | None = option(None, flag="--ood-root", metavar="DIR")
    background: Path | None = option(None, metavar="DIR2")  # background run (likelihood ratio)
    n: int = option(1000, flag="-n")  # examples of each set
    train_n: int = 1000  # training examples for Ĥ
    typical_batch: int = option(10, metavar="M", minimum=0)  # batch typicality test size (0: off)
    # write the run's training data, mutated by --perturb, to FILE.pt and stop
    write_background_data: Path | None = option(None, metavar="FILE")
    perturb: float = 0.2  # mutation rate of --write-background-data


def example_sets(
    run: Any, options: AnomalyOptions, split: str, device: Any, seed: int
) -> dict[str, tuple[str, Tensor]]:
    """The sets ``detect`` scores, as {key: (dataset name, x)}: "in" and "out" (--ood) of
    ``split``, "train" (for Ĥ) and, when the in-distribution data have one, "valid" (the
    bootstrap threshold), of ``run`` (a ``dgm.run_dir.Run``) on ``device``. ``seed`` draws
    dynamic binarization."""
    from dgm.data.dataset import take

    sets = {}
    for key, name, part, n, root in (
        ("in", options.in_data, split, options.n, None),
        ("out", options.out_data, split, options.n, options.out_root),
        ("train", options.in_data, "train", options.train_n, None),
        ("valid", options.in_data, "valid", options.n, None),
    ):
        try:
            data = run.data(part, name, root)
        except ValueError:
            if key == "valid":  # no validation split: no bootstrap threshold
                continue
            raise
        if len(data) == 0:
            if key == "valid":
                continue
            raise ValueError(f"dataset {data.name!r} has no examples in this split")
        gen = torch.Generator().manual_seed(seed)
        sets[key] = (data.name, take(data, torch.arange(min(n, len(data))), device, gen).x)
    return sets


def write_background_data(
    run: Any, model: GenerativeModel, path: Path, rate: float, seed: int = 0
) -> tuple[int, str]:
    """Write the training data of ``run`` (a ``dgm.run_dir.Run``) with a share ``rate`` of
    values mutated in the model's support (``perturb``; Ren et al. 2019) to the .pt file
    ``path``, the data of a background model (``dgm train ... --data tensors``). Returns
    the number of examples and the dataset's name."""
    from dgm.data.dataset import take
    from dgm.io import atomic_write

    if path.suffix != ".pt":
        raise ValueError(f"--write-background-data {path}: name a .pt file, e.g. bg.pt")
    data = run.data("train")
    batch = take(data, torch.arange(len(data)), model.device, torch.Generator().manual_seed(seed))
    x = perturb(batch.x.cpu(), rate, model.support, torch.Generator().manual_seed(seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: torch.save({"x": x, "y": batch.y.cpu()}, p))
    return len(x), data.name


def check_scorable(model: GenerativeModel, what: str = "outlier detection") -> None:
    """Refuse a model whose ``log_prob`` means nothing (``Likelihood.NONE``, GANs), or one
    that needs a context it cannot be given, naming why."""
    if model.likelihood is Likelihood.NONE:
        raise ValueError(
            f"{what} needs a likelihood; {type(model).__name__} has none (likelihood = "
            "none, e.g. a GAN): use a model with an exact likelihood or a bound"
        )
    cond = model.conditioning
    if cond.kind == "context" and not cond.optional:
        raise ValueError(
            f"{what} scores x alone; {type(model).__name__} needs a context c for every x "
            "(train it with --condition-dropout > 0, or without a context)"
        )


@torch.no_grad()
def log_likelihood(
    model: GenerativeModel,
    x: Tensor,
    *,
    batch_size: int = BATCH_SIZE,
    log_prior: Tensor | None = None,
) -> Tensor:
    """log p(x) in nats per example (batch,), in batches, on the model's device, returned
    on the CPU in float64. A class-conditional model gives the mixture log Σ_y p(y) p(x | y)
    with p(y) = exp(``log_prior``) (default uniform), unless it also accepts c=None. For
    ``LOWER_BOUND`` models it is the bound (a stochastic estimate)."""
    check_scorable(model)
    cond = model.conditioning
    out = []
    for chunk in x.split(batch_size):
        chunk = chunk.to(model.device)
        if cond.kind == "classes" and not cond.optional:
            K = cond.num_classes
            prior = log_prior if log_prior is not None else torch.full((K,), -math.log(K))
            joint = torch.stack(
                [model.log_prob(chunk, torch.full((len(chunk),), y)) for y in range(K)], -1
            )  # (b, K)
            out.append((joint.double().cpu() + prior.double()).logsumexp(-1))
        else:
            out.append(model.log_prob(chunk).double().cpu())
    return torch.cat(out)


@torch.no_grad()
def dimension_log_likelihood(
    model: GenerativeModel, x: Tensor, *, batch_size: int = BATCH_SIZE
) -> Tensor:
    """log p(x_d | x_<d) in nats for every flattened dimension d, (batch, D) in float64 on
    the CPU, of a ``DiscreteAutoregressive`` model (unconditional use): the terms whose sum
    is ``log_likelihood``. Splitting a likelihood ratio over dimensions shows which pixels
    drive it (e.g. the zero-valued background against the object)."""
    if not isinstance(model, DiscreteAutoregressive):
        raise ValueError(
            f"{type(model).__name__} has no per-dimension conditionals: use an "
            "autoregressive model (fvsbn, nade, made, pixelcnn, ...)"
        )
    check_scorable(model)
    out = []
    for chunk in x.split(batch_size):
        chunk = chunk.to(model.device)
        logits = model.conditional_logits(chunk)  # (b, D, V)
        index = chunk.reshape(len(chunk), -1, 1).long()  # (b, D, 1)
        out.append(logits.log_softmax(-1).gather(-1, index)[..., 0].double().cpu())
    return torch.cat(out)  # (B, D)


def auroc_auprc(score_in: Tensor, score_out: Tensor) -> tuple[float, float]:
    """(AUROC, AUPRC) of scores where higher means "more anomalous": in-distribution
    examples are the negatives, out-of-distribution ones the positives (scikit-learn's
    ``roc_auc_score`` and ``average_precision_score``)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if len(score_in) == 0 or len(score_out) == 0:
        raise ValueError("AUROC needs at least one in- and one out-of-distribution score")
    scores = torch.cat([score_in, score_out]).double().cpu().numpy()
    labels = [0] * len(score_in) + [1] * len(score_out)
    if not torch.isfinite(torch.as_tensor(scores)).all():
        raise ValueError("scores contain NaN or infinite values; check the model's log_prob")
    return float(roc_auc_score(labels, scores)), float(average_precision_score(labels, scores))


def likelihood_ratio_scores(log_p_model: Tensor, log_p_background: Tensor) -> Tensor:
    """Ren et al. 2019's score, negated so that higher is more anomalous:
    −(log p_model(x) − log p_background(x)), per example."""
    if log_p_model.shape != log_p_background.shape:
        raise ValueError(
            f"model and background scores have shapes {tuple(log_p_model.shape)} and "
            f"{tuple(log_p_background.shape)}; score the same examples with both"
        )
    return log_p_background - log_p_model


def typicality_scores(nll: Tensor, entropy: float) -> Tensor:
    """|−log p(x) − Ĥ| per example (Nalisnick et al. 2019 with batch size 1): far from the
    typical NLL, in either direction, is anomalous. ``entropy`` is Ĥ, the mean NLL of
    training data (``entropy_estimate``)."""
    return (nll - entropy).abs()


def entropy_estimate(train_nll: Tensor) -> float:
    """Ĥ = mean −log p over training examples, nats: the entropy estimate of the typicality
    test."""
    if len(train_nll) == 0:
        raise ValueError("the entropy estimate needs at least one training example")
    return float(train_nll.double().mean())


def batch_statistics(nll: Tensor, entropy: float, batch_size: int) -> Tensor:
    """|mean of −log p over a batch − Ĥ| for consecutive batches of ``batch_size``
    examples (a trailing partial batch is dropped): the typicality test's statistic."""
    if batch_size < 1 or len(nll) < batch_size:
        raise ValueError(
            f"batch size {batch_size} needs at least that many scores, got {len(nll)}: "
            "score more examples (-n) or lower --typical-batch"
        )
    k = len(nll) // batch_size
    means = nll[: k * batch_size].double().view(k, batch_size).mean(1)  # (k,)
    return (means - entropy).abs()


def bootstrap_threshold(
    nll: Tensor,
    entropy: float,
    batch_size: int,
    *,
    num_bootstrap: int = 1000,
    alpha: float = 0.01,
    generator: torch.Generator | None = None,
) -> float:
    """ε_α: the (1 − α) quantile of the batch statistic over ``num_bootstrap`` batches of
    ``batch_size`` drawn with replacement from held-out in-distribution scores ``nll``
    (validation data): a batch whose statistic exceeds it is flagged out-of-distribution at
    false-alarm rate α (Nalisnick et al. 2019, Algorithm 1)."""
    if not 0 < alpha < 1 or num_bootstrap < 1 or batch_size < 1 or len(nll) == 0:
        raise ValueError(
            "the bootstrap needs 0 < alpha < 1, num_bootstrap >= 1, batch_size >= 1 and "
            f"some scores; got alpha={alpha}, num_bootstrap={num_bootstrap}, "
            f"batch_size={batch_size}, {len(nll)} scores"
        )
    index = torch.randint(len(nll), (num_bootstrap, batch_size), generator=generator)
    stats = (nll.double()[index].mean(1) - entropy).abs()  # (num_bootstrap,)
    return float(torch.quantile(stats, 1 - alpha))


def perturb(
    x: Tensor,
    rate: float,
    support: constraints.Constraint,
    generator: torch.Generator | None = None,
) -> Tensor:
    """x with each dimension replaced, with probability ``rate``, by a value drawn uniformly
    from ``support``: a random bit for binary data, a random level for integers in an
    interval (0..255 bytes), Uniform[0, 1] otherwise (unit-scale images). Ren et al.
    2019 train the background model on such mutated inputs (rates 0.1 to 0.3), so it
    learns the population-level statistics and not the semantics."""
    if not 0 <= rate <= 1:
        raise ValueError(f"the mutation rate must lie in [0, 1], got {rate}")
    hit = torch.rand(x.shape, generator=generator) < rate
    if support is constraints.boolean:
        noise = torch.randint(0, 2, x.shape, generator=generator).to(x.dtype)
    elif isinstance(support, constraints.integer_interval):
        lo, hi = int(support.lower_bound), int(support.upper_bound)
        noise = torch.randint(lo, hi + 1, x.shape, generator=generator).to(x.dtype)
    else:
        noise = torch.rand(x.shape, generator=generator).to(x.dtype)
    return torch.where(hit.to(x.device), noise.to(x.device), x)


def detection_table(
    nll_in: Tensor,
    nll_out: Tensor,
    train_nll: Tensor,
    *,
    background_in: Tensor | None = None,
    background_out: Tensor | None = None,
    valid_nll: Tensor | None = None,
    typical_batch: int = 0,
    generator: torch.Generator | None = None,
) -> list[dict[str, float | str]]:
    """Rows {method, auroc, auprc} for the raw score (−log p), the likelihood ratio (when
    background log-likelihoods are given, as NLLs ``background_*``) and typicality; with
    ``typical_batch`` = M > 0 also the batch typicality test, its AUROC over batches of M
    and, given ``valid_nll``, the share of out-of-distribution batches flagged at the
    bootstrap threshold (α = 0.01) and the false-alarm share of in-distribution ones."""
    rows: list[dict[str, float | str]] = []

    def add(method: str, s_in: Tensor, s_out: Tensor, **extra: float) -> None:
        auroc, auprc = auroc_auprc(s_in, s_out)
        rows.append({"method": method, "auroc": auroc, "auprc": auprc, **extra})

    add("likelihood", nll_in, nll_out)
    if background_in is not None and background_out is not None:
        add(
            "likelihood ratio",
            likelihood_ratio_scores(-nll_in, -background_in),
            likelihood_ratio_scores(-nll_out, -background_out),
        )
    entropy = entropy_estimate(train_nll)
    add("typicality", typicality_scores(nll_in, entropy), typicality_scores(nll_out, entropy))
    if typical_batch > 0:
        b_in = batch_statistics(nll_in, entropy, typical_batch)
        b_out = batch_statistics(nll_out, entropy, typical_batch)
        extra = {}
        if valid_nll is not None:
            eps = bootstrap_threshold(valid_nll, entropy, typical_batch, generator=generator)
            extra = {
                "threshold": eps,
                "flagged_out": float((b_out > eps).double().mean()),
                "flagged_in": float((b_in > eps).double().mean()),
            }
        add(f"typicality (batches of {typical_batch})", b_in, b_out, **extra)
    return rows


def detect(
    model: GenerativeModel,
    x: dict[str, Tensor],
    *,
    background: GenerativeModel | None = None,
    typical_batch: int = 10,
    batch_size: int = BATCH_SIZE,
    seed: int = 0,
) -> tuple[list[dict[str, float | str]], dict[str, Tensor]]:
    """Score the sets ``x`` (``"in"``, ``"out"``, ``"train"`` and optionally ``"valid"``,
    each (n, *event_shape)) by ``model`` and compare the detectors (``detection_table``):
    the likelihood ratio when a ``background`` model of the same shape is given (Ren et al.
    2019), the batch typicality test with batches of ``typical_batch`` (0: off; it is off
    too when either set has fewer examples). Returns the rows and the NLLs per set (nats
    per example, ``background_in`` / ``background_out`` included when scored)."""
    check_scorable(model)
    nll = {k: -log_likelihood(model, v, batch_size=batch_size) for k, v in x.items()}
    if background is not None:
        check_scorable(background)
        if tuple(background.event_shape) != tuple(model.event_shape):
            raise ValueError(
                f"the background model takes shape {tuple(background.event_shape)}, the model "
                f"{tuple(model.event_shape)}: train it on the same data"
            )
        for k in ("in", "out"):
            nll[f"background_{k}"] = -log_likelihood(background, x[k], batch_size=batch_size)
    M = typical_batch if typical_batch <= min(len(nll["in"]), len(nll["out"])) else 0
    rows = detection_table(
        nll["in"],
        nll["out"],
        nll["train"],
        background_in=nll.get("background_in"),
        background_out=nll.get("background_out"),
        valid_nll=nll.get("valid"),
        typical_batch=M,
        generator=torch.Generator().manual_seed(seed),
    )
    return rows, nll
