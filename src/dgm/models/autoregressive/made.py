"""Masked autoencoder for distribution estimation (MADE), Bernoulli or 256-way outputs.

An MLP whose weights are masked so that output d sees only the inputs before d in an
ordering: all D conditionals p(x_d | x_<d) in one pass. Order-agnostic training cycles
through M fixed orderings / connectivities, and evaluation averages them (an ensemble).

References:
    Germain, Gregor, Murray & Larochelle 2015, MADE: Masked Autoencoder for Distribution
    Estimation, arXiv:1502.03509.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.model import ClassConditional, Loss
from dgm.models.autoregressive.fixed_order import NUM_LEVELS, FixedOrderModel
from dgm.nn import MADE as MADENetwork
from dgm.nn import natural_ordering, random_ordering
from dgm.registry import register


@dataclasses.dataclass
class MADEConfig(ClassConditional):
    hidden_sizes: tuple[int, ...] = (500,)  # masked layer widths, e.g. 500 (the paper's)
    head: Literal["bernoulli", "categorical"] = "bernoulli"  # binary x, or 0..255 (--scale byte)
    ordering: Literal["natural", "random"] = "natural"  # order of the flattened dims
    num_masks: int = 1  # M orderings/connectivities cycled in training (order-agnostic)
    ensemble_masks: bool = True  # with M > 1: log_prob is the log-mean-exp over the M masks
    mask_seed: int = 0  # seed of the random orderings and connectivities


@register("made", MADEConfig)
class MADE(FixedOrderModel):
    """MADE (Germain et al. 2015): exact log_prob in nats, binary or 8-bit x.

    ``head`` = bernoulli models float x in {0, 1}; categorical gives 256 logits per
    dimension for integer x in 0..255 (the network reads x / 255). With ``num_masks`` M >
    1 the loss of training step t uses mask set t mod M (``training_step``, set by the
    trainer, so a resumed run continues the same cycle); mask set m has ordering m
    (natural, or a random permutation seeded by ``mask_seed + m``) and hidden degrees
    shuffled by ``mask_seed + m`` (set 0 unshuffled). With ``ensemble_masks``, log_prob is
    log (1/M) Σ_m p_m(x), an exact mixture of the M autoregressive models; without it,
    log_prob, sampling and completion use mask set 0 only.

    ``ordering()`` is mask set 0's ordering. When the M mask sets share that ordering
    (``ordering="natural"``), the ensemble is itself autoregressive in it:
    ``conditional_logits`` are the mixture's exact conditionals, p(x_d | x_<d) = Σ_m
    w_m p_m(x_d | x_<d) with w_m ∝ p_m(x_<d), and sampling and completion use them. An
    ensemble of different random orderings has no single order: ``conditional_logits``
    raises (build it with ``ensemble_masks=False`` for entropy coding), ``sample`` draws a
    mask set per example (the mixture's exact law) and ``complete`` does the same, each
    row then ancestral in its own ordering.

    With ``num_classes`` K > 0 it is p(x | c) for labels c: the one-hot label enters the
    network's first hidden layer and its outputs through unmasked weights (the network's
    context input), so every conditional, in every mask set, depends on the class.

    References:
        Germain et al. 2015, arXiv:1502.03509.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("made", (1, 3, 3), hidden_sizes=(16,), num_masks=2)
        >>> x = model.sample(4, generator=torch.Generator().manual_seed(0))
        >>> x.shape, model.log_prob(x).shape
        (torch.Size([4, 1, 3, 3]), torch.Size([4]))
    """

    def __init__(self, event_shape: Iterable[int], config: MADEConfig) -> None:
        super().__init__(event_shape, config)
        if config.head not in ("bernoulli", "categorical"):
            raise ValueError(f"head must be bernoulli or categorical, got {config.head!r}")
        if config.ordering not in ("natural", "random"):
            raise ValueError(f"ordering must be natural or random, got {config.ordering!r}")
        if config.num_masks < 1:
            raise ValueError(f"num_masks must be >= 1, got {config.num_masks}")
        self._set_head(categorical=config.head == "categorical")
        D, M = self.num_dims, config.num_masks
        if config.ordering == "natural":
            orders = [natural_ordering(D)] * M
        else:
            orders = [
                random_ordering(D, torch.Generator().manual_seed(config.mask_seed + m))
                for m in range(M)
            ]
        self.net = MADENetwork(
            D,
            config.hidden_sizes,
            NUM_LEVELS if self.categorical else 1,
            torch.stack(orders),  # (M, D)
            seed=config.mask_seed,
            context_features=self.num_classes,
        )

    @property
    def ensembled(self) -> bool:
        return self.config.ensemble_masks and self.config.num_masks > 1

    @property
    def shared_order(self) -> bool:
        """True when every mask set uses the same ordering (mask set 0's)."""
        return bool((self.net.orderings == self.net.orderings[0]).all())

    def ordering(self) -> Tensor:
        """The ordering of mask set 0 (the only one when num_masks = 1)."""
        return self.net.orderings[0]

    def _order(self, index: int = 0) -> Tensor:
        return self.net.orderings[index]

    def conditional_logits(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        if self.ensembled and not self.shared_order:
            raise ValueError(
                "an ensemble of MADE masks with different orderings has no single order, "
                "so no per-dimension conditionals: build it with ensemble_masks=False (mask "
                "set 0 alone) or ordering='natural' (the mixture in one order)"
            )
        return super().conditional_logits(x, c)

    def _outputs(self, x: Tensor, c: Tensor | None = None, index: int = 0) -> Tensor:
        if self.ensembled and self.shared_order:
            return self._mixture_outputs(x, c)
        return self._single(x, index, c)

    def _context(self, c: Tensor | None) -> Tensor | None:
        """The network's context: one-hot labels (B, K) in the model's dtype, or None."""
        return None if c is None else F.one_hot(c, self.num_classes).to(self.dtype)

    def _single(self, x: Tensor, index: int, c: Tensor | None = None) -> Tensor:
        """The outputs of mask set ``index`` alone: (B, D, 256) or (B, D) logits."""
        out = self.net(x, index, self._context(c))  # (B, D, K)
        return out if self.categorical else out.squeeze(-1)

    def _mixture_outputs(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """The shared-order ensemble's conditionals: Bernoulli logits (B, D) or normalised
        log-probabilities (B, D, 256) of Σ_m w_m(x_<d) p_m(x_d | x_<d), with log w_m the
        log-likelihood of x_<d under mask set m (normalised over m)."""
        order, context = self.ordering(), self._context(c)
        terms, per_value = [], []
        for m in range(self.config.num_masks):
            out = self.net(x, m, context)  # (B, D, K)
            if self.categorical:
                logp = out.log_softmax(-1)  # (B, D, 256)
                levels = (x * (NUM_LEVELS - 1)).round().long()  # (B, D): x back to 0..255
                chosen = logp.gather(-1, levels[..., None]).squeeze(-1)  # (B, D)
            else:
                out = out.squeeze(-1)  # (B, D)
                logp = torch.stack([F.logsigmoid(-out), F.logsigmoid(out)], -1)  # (B, D, 2)
                chosen = -F.binary_cross_entropy_with_logits(out, x, reduction="none")
            ordered = chosen[:, order].cumsum(-1)[:, :-1]  # (B, D-1), in order positions
            prefix = torch.empty_like(chosen)
            prefix[:, order] = F.pad(ordered, (1, 0))  # (B, D): log p_m(x before d)
            terms.append(prefix)
            per_value.append(logp)
        log_w = torch.stack(terms).log_softmax(0)  # (M, B, D)
        mix = (log_w[..., None] + torch.stack(per_value)).logsumexp(0)  # (B, D, V)
        return mix if self.categorical else mix[..., 1] - mix[..., 0]

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x) in nats, exact, (B,): mask set 0, or the ensemble's log-mean-exp."""
        if not self.ensembled:
            return super().log_prob(x, c)
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        flat = x.flatten(1)  # (B, D)
        inputs = self._inputs(flat)
        M = self.config.num_masks
        terms = [self._log_prob_flat(flat, self._single(inputs, m, c)) for m in range(M)]
        return torch.stack(terms).logsumexp(0) - math.log(M)  # (B,)

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        """Mean NLL in nats under mask set ``training_step`` mod M (order-agnostic training)."""
        self._check_phase(phase)
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        flat = x.flatten(1)  # (B, D)
        m = self.training_step % self.config.num_masks
        nll = -self._log_prob_flat(flat, self._single(self._inputs(flat), m, c)).mean()
        return Loss(nll, {"nll": nll.detach()})

    def validation_log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return self.log_prob(x, c)

    def _fill(
        self,
        flat: Tensor,
        observed: Tensor,
        c: Tensor | None,
        generator: torch.Generator | None,
        T: float,
        index: int = 0,
    ) -> Tensor:
        """Different orderings in an ensemble: each row draws its mask set uniformly."""
        if not self.ensembled or self.shared_order:
            return super()._fill(flat, observed, c, generator, T, index)
        M = self.config.num_masks
        which = torch.randint(M, (len(flat),), generator=generator, device=flat.device)
        for m in range(M):
            rows = which == m
            if bool(rows.any()):
                flat[rows] = super()._fill(
                    flat[rows], observed[rows], None if c is None else c[rows], generator, T, m
                )
        return flat
