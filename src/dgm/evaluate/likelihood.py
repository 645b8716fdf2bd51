"""Negative log-likelihoods on a dataset, in nats per example and bits per dimension.

Units, written once: ``nll`` is in nats per example; bits/dim = nll / (D ln 2) with D the
number of dimensions of one x. Discrete data (8-bit images) modelled by a continuous
density are reported on their own integer scale, never on a rescaled one: such a model
takes the integers 0..L−1 (``--scale byte``: 0..255 for every image dataset, L = 256) and
dequantizes them inside its ``log_prob``, y = (x + u)/L, so that ``log_prob`` is already the
bound log p(y) − D ln L ≤ log P(x) of the discrete x (``Likelihood.DEQUANTIZED``; the flows'
``dequantize`` option, documented in ``dgm.models.flows.base``). No correction is applied
here: ``evaluate`` reports that model's NLL and bits/dim as they are, with ``bound:
"dequantized"`` and the ``levels`` L, and a density uniform on [0, L)^D comes out at
exactly log2 L bits/dim (8 for bytes). A continuous model fed the ``unit`` scale (x/255,
or x/16 for digits) reports the density of those floats (``bound: "exact"``), which is not
a discrete-data likelihood and not comparable to published bits/dim.

Token sequences (``TokenSequence``: char_rnn, gpt) are padded to T positions in some data
(``words``, captions: the word, its end token, then end tokens up to T). Their per-token
figures divide by the *real* tokens, the end token included and the padding excluded,
never by T: ``nats_per_token`` = Σ NLL / Σ real tokens over the data (a ratio of sums, so
a long word weighs more than a short one, as in a file of the words), ``bits_per_token``
the same in bits, and ``tokens`` the mean real tokens per sequence. ``bits_per_dim`` (per
padded position) is not reported for them; on running text, every token real, the two
agree.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from dgm.data.dataset import take
from dgm.model import ELBOTerms, GenerativeModel, ImportanceWeighted, Likelihood, TokenSequence


def bits_per_dim(nll_nats: float, num_dims: int) -> float:
    """Nats per example -> bits per dimension."""
    return nll_nats / (num_dims * math.log(2))


def _batches(
    data: Dataset, batch_size: int, device: torch.device, rank: int = 0, world_size: int = 1
) -> Any:
    """Batches of ``data`` in order; with ``world_size`` > 1 every ``world_size``-th batch
    from batch ``rank`` on (this rank's share of a sharded evaluation)."""
    n = len(data)  # type: ignore[arg-type]
    for b, index in enumerate(torch.arange(n).split(batch_size)):
        if b % world_size == rank:
            yield take(data, index, device)


def _sum_over_ranks(values: list[float], world_size: int) -> list[float]:
    """``values`` summed over the ranks of the process group (float64); as given in one."""
    if world_size == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


@torch.no_grad()
def evaluate(
    model: GenerativeModel,
    data: Dataset,
    *,
    iw_samples: int | None = None,
    batch_size: int = 256,
    validation: bool = False,
    progress: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> dict[str, Any]:
    """Average NLL of ``model`` on ``data`` (nats/example) and what it is.

    With ``world_size`` > 1 (called by every rank of a process group) each rank scores its
    share of the batches and the sums are all-reduced: every rank returns the result over
    all of ``data``, as one process would.

    ``bound`` names what was computed: ``"exact"`` (log p(x)), ``"elbo"`` (so ``nll`` is the
    negative ELBO, an upper bound on -log p(x)), ``"dequantized"`` (a continuous density's
    dequantization bound on the discrete x, on the 0..L−1 scale, with ``levels`` L: see
    the module docstring) or ``"iwae_k"`` (the importance-weighted bound with k samples,
    tighter as k grows). Latent-variable models (``ELBOTerms``) also
    report the mean ``kl`` and ``reconstruction`` terms of the one-sample ELBO, computed in
    the same pass when ``iw_samples`` is given. With ``validation`` (the trainer's
    periodic check) ``nll`` is the negative of the model's ``validation_log_prob``, a score
    it may make cheaper than its likelihood, ``bound`` is ``"validation"`` and no other
    terms are computed. ``progress`` shows a progress bar on stderr for an evaluation that
    lasts more than two seconds.
    """
    if model.likelihood is Likelihood.NONE:
        raise ValueError(
            f"{type(model).__name__} defines no likelihood: it cannot be evaluated in nats"
        )
    if iw_samples is not None and validation:
        raise ValueError("iw_samples and validation exclude each other: pick one score")
    if iw_samples is not None:
        if not isinstance(model, ImportanceWeighted):
            raise ValueError(
                f"--iw-samples needs a model with an importance-weighted bound "
                f"(log_prob_iw); {type(model).__name__} has none"
            )
        if iw_samples < 1:
            raise ValueError(f"iw_samples must be >= 1, got {iw_samples}")
    if len(data) == 0:  # type: ignore[arg-type]
        raise ValueError("the evaluation split is empty")
    model.eval()
    total, total_sq, n = 0.0, 0.0, 0
    tokens = {"n": 0.0, "n_sq": 0.0, "nll_n": 0.0}  # sums of real tokens, their squares, NLL·tokens
    extra: dict[str, float] = {}
    terms = isinstance(model, ELBOTerms) and not validation
    bar = tqdm(
        total=len(data),  # type: ignore[arg-type]
        desc="eval",
        unit="ex",
        disable=not progress,
        delay=2,  # a quick evaluation shows no bar at all
        dynamic_ncols=True,
        leave=False,
    )
    with bar:
        for x, y, context in _batches(data, batch_size, model.device, rank, world_size):
            c = model.conditioning.pick(y, context)
            if validation:
                lp = model.validation_log_prob(x, c)
            elif iw_samples is not None:
                lp = model.log_prob_iw(x, iw_samples, c)  # type: ignore[attr-defined]
            elif not terms:
                lp = model.log_prob(x, c)
            if terms:  # the one-sample ELBO's two terms, drawn after any IWAE samples
                rec, kl = model.elbo_terms(x, c)  # type: ignore[attr-defined]
                extra["kl"] = extra.get("kl", 0.0) + kl.double().sum().item()
                extra["reconstruction"] = (
                    extra.get("reconstruction", 0.0) - rec.double().sum().item()
                )
                if iw_samples is None:
                    lp = rec - kl  # the ELBO itself
            total += -lp.double().sum().item()
            total_sq += lp.double().square().sum().item()
            if isinstance(model, TokenSequence):
                count = model.token_counts(x).double()  # (b,) real tokens
                tokens["n"] += count.sum().item()
                tokens["n_sq"] += count.square().sum().item()
                tokens["nll_n"] += -(lp.double() * count).sum().item()
            n += len(x)
            bar.update(len(x))
    names = sorted(extra)
    sums = [total, total_sq, n, *tokens.values(), *(extra[k] for k in names)]
    if world_size > 1:  # a rank may hold no batch of a term: every rank sends every term
        names = sorted({*names, *(["kl", "reconstruction"] if terms else [])})
        sums = [total, total_sq, n, *tokens.values(), *(extra.get(k, 0.0) for k in names)]
    total, total_sq, n_sum, *rest = _sum_over_ranks(sums, world_size)
    n = round(n_sum)
    tokens = dict(zip(tokens, rest[: len(tokens)], strict=True))
    extra = dict(zip(names, rest[len(tokens) :], strict=True))
    nll = total / n
    # the standard error of that mean over the examples (it includes the noise of a
    # stochastic estimate: sampled z, a diffusion bound's sampled t's)
    var = max(total_sq - n * nll * nll, 0.0) / (n - 1) if n > 1 else math.nan
    se = math.sqrt(var / n)
    if validation:
        bound = "validation"
    elif iw_samples is not None:
        bound = f"iwae_{iw_samples}"
    else:
        bound = {Likelihood.EXACT: "exact", Likelihood.DEQUANTIZED: "dequantized"}.get(
            model.likelihood, "elbo"
        )
    result: dict[str, Any] = {"nll": nll, "nll_se": se}
    if isinstance(model, TokenSequence):
        result |= _per_token(nll * n, total_sq, n, tokens)
    else:
        result["bits_per_dim"] = bits_per_dim(nll, model.num_dims)
        result["bits_per_dim_se"] = bits_per_dim(se, model.num_dims)
    result["bound"] = bound
    if bound == "dequantized":  # the integer scale the NLL is on
        result["levels"] = int(model.support.upper_bound) + 1  # type: ignore[attr-defined]
    return {**result, "n": n, **{k: v / n for k, v in extra.items()}}


def _per_token(nll_sum: float, nll_sq: float, n: int, tokens: dict[str, float]) -> dict[str, float]:
    """Nats and bits per real token, R = Σ NLL_i / Σ tokens_i, with the standard error of
    that ratio of means over the n sequences (the delta method: the spread of the
    residuals NLL_i − R·tokens_i, over the mean tokens per sequence)."""
    per_token = nll_sum / tokens["n"]
    residual_sq = nll_sq - 2 * per_token * tokens["nll_n"] + per_token**2 * tokens["n_sq"]
    mean_tokens = tokens["n"] / n
    se = math.sqrt(max(residual_sq, 0.0) / (n * (n - 1))) / mean_tokens if n > 1 else math.nan
    return {
        "tokens": mean_tokens,
        "nats_per_token": per_token,
        "nats_per_token_se": se,
        "bits_per_token": per_token / math.log(2),
        "bits_per_token_se": se / math.log(2),
    }


@torch.no_grad()
def evaluate_losses(model: GenerativeModel, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
    """Mean of every phase's loss metrics on ``data``: the validation signal of models
    without a likelihood (GANs)."""
    sums: dict[str, float] = {}
    n = 0
    for x, y, context in _batches(data, batch_size, model.device):
        c = model.conditioning.pick(y, context)
        for phase in dict.fromkeys(model.phases):
            out = model.loss(x, c, phase=phase)
            for k, v in {"loss": out.value, **out.metrics}.items():
                key = f"{phase}/{k}"
                sums[key] = sums.get(key, 0.0) + float(v) * len(x)
        n += len(x)
    return {k: v / n for k, v in sums.items()} | {"n": n}
