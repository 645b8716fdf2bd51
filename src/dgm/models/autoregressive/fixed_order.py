"""What FVSBN, NADE and MADE share: p(x) = Π_d p(x_d | x_<d) over the flattened x in a
fixed ordering, with Bernoulli (binary float x) or 256-way categorical (integer x)
conditionals, each optionally given a class label c. A subclass gives ``_outputs`` (the
per-dimension parameters computed from x and c in one pass, teacher forcing); log_prob,
the discrete-autoregressive conditionals, sampling and completion follow here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import constraints

from dgm.model import GenerativeModel, Likelihood

NUM_LEVELS = 256  # values of an 8-bit integer x for the categorical head


@dataclasses.dataclass
class AutoregressiveSampleOptions:
    temperature: float = 1.0  # divide every conditional's logits by T (< 1: sharper)


class DrawsInOrder(GenerativeModel):
    """``sample`` and ``complete`` for models that draw one dimension at a time: a subclass
    gives ``_fill(flat, observed, c, generator, temperature)``, which draws the unobserved
    entries of the flattened x (B, D) in its order, each given the entries before it and
    the checked conditioning c (None for an unconditional model). Sampling options other
    than ``temperature`` (PixelCNN's ``fast``) reach ``_fill`` as keywords."""

    def _fill(
        self,
        flat: Tensor,
        observed: Tensor,
        c: Tensor | None,
        generator: torch.Generator | None,
        T: float,
    ) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sample(
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Tensor:
        """n draws, (n, *event_shape): D sequential passes in the model's order, with the
        ``temperature`` of its sampling options (the other options go to ``_fill``)."""
        opts = self.sample_settings(options)
        if not opts.temperature > 0:
            raise ValueError(f"temperature must be positive, got {opts.temperature}")
        c = self.check_c(c, n)
        dtype = torch.long if self.integer_data else self.dtype
        flat = torch.zeros(n, self.num_dims, dtype=dtype, device=self.device)
        observed = torch.zeros_like(flat, dtype=torch.bool)
        extra = {k: v for k, v in dataclasses.asdict(opts).items() if k != "temperature"}
        flat = self._fill(flat, observed, c, generator, opts.temperature, **extra)
        return flat.view(n, *self.event_shape)

    @torch.no_grad()
    def complete(
        self,
        x: Tensor,
        observed_mask: Tensor,
        c: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """x with the dimensions where ``observed_mask`` is False drawn in the model's order,
        each given everything before it in that order; observed dimensions are unchanged.

        Exact (a draw from p(x_missing | x_observed)) only when every observed dimension
        comes before every missing one in the order. For other masks it is ancestral
        sampling that conditions on an observed dimension only where the order puts it
        before the missing one drawn; observed dimensions later in the order are ignored.
        """
        mask = observed_mask.to(device=x.device).expand_as(x)
        x = self.check_x(torch.where(mask, x, torch.zeros_like(x)))
        c = self.check_c(c, len(x))
        return self._fill(x.flatten(1).clone(), mask.flatten(1), c, generator, 1.0).view(x.shape)


class FixedOrderModel(DrawsInOrder):
    """Base of the fixed-order autoregressive models of binary or 8-bit data (exact
    likelihood). ``self.categorical`` picks the head: False, a Bernoulli per dimension on
    float x in {0, 1}; True, a 256-way categorical on integer x in 0..255."""

    likelihood = Likelihood.EXACT
    sample_options = AutoregressiveSampleOptions
    categorical = False

    def _set_head(self, categorical: bool) -> None:
        self.categorical = categorical
        self.support = (
            constraints.integer_interval(0, NUM_LEVELS - 1) if categorical else constraints.boolean
        )

    def support_hint(self) -> str:
        if self.categorical:
            return "give 8-bit integers 0..255 (--scale byte)"
        return "binarize the data (--binarize static)"

    # -- for subclasses ---------------------------------------------------------------------

    def ordering(self) -> Tensor:
        """The permutation of the D flattened dimensions the conditionals follow."""
        raise NotImplementedError

    def _outputs(self, x: Tensor, c: Tensor | None = None, index: int = 0) -> Tensor:
        """Per-dimension outputs from flattened x (B, D) in one pass: (B, D) Bernoulli
        logits or (B, D, 256) categorical logits; output d depends on x before d only (and
        on the checked labels c (B,) of a class-conditional model, None otherwise).
        ``index`` picks one of several orderings (MADE's order-agnostic mask sets)."""
        raise NotImplementedError

    def _inputs(self, flat: Tensor) -> Tensor:
        """x as the network reads it: floats, 8-bit levels scaled to [0, 1]."""
        return flat.to(self.dtype) / (NUM_LEVELS - 1) if self.categorical else flat

    # -- the contract -----------------------------------------------------------------------

    def conditional_logits(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """Logits (B, D, V) of p(x_d | x before d) for each flattened d (teacher forcing):
        V = 2 for binary x ([0, l], so log_softmax is the Bernoulli with logit l), V = 256
        for 8-bit x."""
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        return self._as_logits(self._outputs(self._inputs(x.flatten(1)), c))

    def _as_logits(self, out: Tensor) -> Tensor:
        if self.categorical:
            return out  # (B, D, 256)
        return torch.stack([torch.zeros_like(out), out], dim=-1)  # (B, D, 2)

    def _log_prob_flat(self, flat: Tensor, out: Tensor) -> Tensor:
        """Σ_d log p(x_d | x before d) in nats (B,) from the outputs of ``_outputs``."""
        if self.categorical:
            return out.log_softmax(-1).gather(-1, flat[..., None]).squeeze(-1).sum(-1)
        return -F.binary_cross_entropy_with_logits(out, flat, reduction="none").sum(-1)

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x) in nats, exact, shape (B,)."""
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        flat = x.flatten(1)  # (B, D)
        return self._log_prob_flat(flat, self._outputs(self._inputs(flat), c))

    def _order(self, index: int = 0) -> Tensor:
        """The ordering of mask set ``index`` (one ordering unless overridden)."""
        return self.ordering()

    def _fill(
        self,
        flat: Tensor,
        observed: Tensor,
        c: Tensor | None,
        generator: torch.Generator | None,
        T: float,
        index: int = 0,
    ) -> Tensor:
        """Draw the unobserved entries of flat (B, D) in order, one pass per dimension."""
        for d in self._order(index).tolist():
            if bool(observed[:, d].all()):
                continue
            out = self._outputs(self._inputs(flat), c, index)[:, d]  # (B,) or (B, 256)
            draw = self._draw(out, generator, T)
            flat[:, d] = torch.where(observed[:, d], flat[:, d], draw)
        return flat

    def _draw(self, out: Tensor, generator: torch.Generator | None, T: float) -> Tensor:
        """One draw per row from a dimension's outputs at temperature T."""
        if self.categorical:
            probs = (out / T).softmax(-1)  # (B, 256)
            return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        u = torch.rand(out.shape, generator=generator, device=out.device, dtype=out.dtype)
        return (u < torch.sigmoid(out / T)).to(out.dtype)
