"""What PixelCNN and PixelRNN share: autoregressive models of images (C, H, W) in raster
order, channels R -> G -> B inside a pixel, with a Bernoulli, categorical or discretized
logistic mixture head per sub-pixel, and optional class or context conditioning.

A subclass gives its network ``net`` (the head parameters of every sub-pixel from the
scaled image in one pass, teacher forcing) and ``_fast_sampler``; log_prob, the
per-dimension conditionals, the naive sampler and the fast/naive dispatch of ``_fill``,
which both ``sample`` and ``complete`` go through, follow here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import constraints

from dgm.distributions import DiscretizedLogisticMixture
from dgm.model import ClassConditional, ContextConditional, Likelihood
from dgm.models.autoregressive.fixed_order import DrawsInOrder

HEADS = ("bernoulli", "categorical", "logistic_mixture")
MIN_LOG_SCALE = -7.0  # floor of the logistic log-scales, as PixelCNN++ (a bin is 2/255 wide)


@dataclasses.dataclass
class PixelConfig(ContextConditional, ClassConditional):
    """The fields every pixel model's config starts with (subclass configs extend it).

    ``head``: bernoulli models binary float x; categorical and logistic_mixture model
    integer x in 0..num_levels-1 (``--scale byte`` for 8-bit images)."""

    head: Literal["bernoulli", "categorical", "logistic_mixture"] = "bernoulli"  # x's law
    num_levels: int = 256  # values of an integer sub-pixel, 0..num_levels-1 (8-bit: 256)
    num_mixtures: int = 5  # logistic components per sub-pixel (PixelCNN++ uses 5 to 10)


@dataclasses.dataclass
class PixelSampleOptions:
    temperature: float = 1.0  # divide every conditional's logits by T (< 1: sharper)
    fast: bool = True  # the model's fast sampler: the naive loop's draws, less work (False: naive)


class FastSampler:
    """Base of what ``PixelModel._fast_sampler`` returns: ``fill`` draws the unobserved
    sub-pixels of an image exactly as the naive ``PixelModel._naive_fill`` does (the same
    order, the same skips, the same random draws from the same generator, hence the same
    pixels), computing less. Sampling is a fill with nothing observed (``draw``)."""

    def __init__(self, model: PixelModel) -> None:
        self.model = model

    def fill(
        self,
        x: Tensor,
        observed: Tensor,
        c: Tensor | None,
        generator: torch.Generator | None,
        T: float,
    ) -> Tensor:
        """x (B, C, H, W) (levels, or binary floats) with every entry where ``observed``
        (B, C, H, W, bool) is False drawn in the model's order at temperature T, given the
        checked c, written in place and returned. A sub-pixel observed in every example is
        skipped (no random draw); any other is drawn for the whole batch and the examples
        where it is observed keep their value (``keep_observed``)."""
        raise NotImplementedError

    def draw(self, n: int, c: Tensor | None, generator: torch.Generator | None, T: float) -> Tensor:
        """n draws (n, C, H, W) given the checked c, at temperature T: ``fill`` of zeros
        with nothing observed."""
        model = self.model
        dtype = torch.long if model.integer_data else model.dtype
        x = torch.zeros(n, *model.event_shape, dtype=dtype, device=model.device)
        return self.fill(x, torch.zeros_like(x, dtype=torch.bool), c, generator, T)

    @staticmethod
    def keep_observed(
        x: Tensor, observed: Tensor, ch: int, i: int, j: int, drawn: Tensor
    ) -> Tensor:
        """Write the draws (B,) into x at sub-pixel (ch, i, j) except in the examples where it
        is observed (the naive loop's ``torch.where``); returns the values now there (B,)."""
        value = torch.where(observed[:, ch, i, j], x[:, ch, i, j], drawn)
        x[:, ch, i, j] = value
        return value


class PixelModel(DrawsInOrder):
    """Base of the pixel models: p(x) = Π over pixels in raster order, and over channels
    R, G, B inside a pixel, of p(x_{ch,i,j} | everything before), exact, in nats.

    Ordering: flattened index d = ch·H·W + i·W + j (x.flatten(1)) is drawn at position
    (i·W + j)·C + ch; ``ordering()`` lists the flattened indices in drawing order.

    Heads (``config.head``): ``bernoulli`` (float x in {0, 1}, P = 1 logit per sub-pixel),
    ``categorical`` (integer x in 0..L-1, P = L logits) or ``logistic_mixture`` (integer x,
    a ``DiscretizedLogisticMixture`` of K = ``num_mixtures`` components, P = 3K: K logits,
    K locations, K log-scales floored at -7, on the [-1, 1] scale). The network reads x
    scaled to [-1, 1]: 2x/(L-1) - 1, with L = 2 for binary x.

    Conditioning: ``num_classes`` > 0 gives p(x | label); a ``context_shape`` gives p(x | c)
    for a context image (C', h, w), resized to H x W (bilinear) and mapped by an unmasked
    3x3 convolution, or a vector (d,) mapped by a linear layer. Either way
    ``_condition_features(c)`` returns one feature map (B, F, H, W), F the
    ``condition_features`` the subclass passed to ``__init__``, which a subclass adds
    inside its layers (through its own 1x1 projections); None for an unconditional model.

    Subclass interface: the subclass checks its config with ``_check_layers`` and sets
    ``self.net``, a module with::

        net(inputs: Tensor, cond: Tensor | None) -> Tensor  # (B, C·P, H, W)

    ``inputs`` is x scaled to [-1, 1], (B, C, H, W) in the model's dtype; ``cond`` is the
    (B, F, H, W) conditioning features or None. Channel group ch (P channels, P =
    ``num_head_params``) of output (i, j) may depend only on inputs at pixels before (i, j)
    in raster order and on channels < ch at (i, j) itself; ``_head_params`` views it as
    (B, C, P, H, W) (a subclass may override ``_head_params`` instead). It also gives::

        _fast_sampler() -> FastSampler | None  # .fill(x, observed, c, generator, T)

    which ``_fill`` uses, for ``sample(..., fast=True)`` (the default of
    ``PixelSampleOptions``) and for ``complete``; it must make the naive loop's draws for
    the same generator. ``fast=False``, or a subclass whose ``_fast_sampler`` returns None,
    runs the naive ``_naive_fill`` here: one full ``_head_params`` pass per dimension drawn.
    """

    likelihood = Likelihood.EXACT
    sample_options: type | None = PixelSampleOptions
    net: nn.Module

    def __init__(
        self, event_shape: Iterable[int], config: PixelConfig, condition_features: int = 0
    ) -> None:
        super().__init__(event_shape, config)
        if len(self.event_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} models images: event_shape must be (C, H, W), got "
                f"{tuple(self.event_shape)}"
            )
        if config.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {config.head!r}")
        if config.head != "bernoulli" and config.num_levels < 2:
            raise ValueError(f"num_levels must be >= 2, got {config.num_levels}")
        if config.head == "logistic_mixture" and config.num_mixtures < 1:
            raise ValueError(f"num_mixtures must be >= 1, got {config.num_mixtures}")
        self.head = config.head
        self.levels = 2 if self.head == "bernoulli" else config.num_levels
        self.support = (
            constraints.boolean
            if self.head == "bernoulli"
            else constraints.integer_interval(0, self.levels - 1)
        )
        self.num_head_params = {
            "bernoulli": 1,
            "categorical": self.levels,
            "logistic_mixture": 3 * config.num_mixtures,
        }[self.head]
        self.condition_features = condition_features
        self.class_embedding: nn.Embedding | None = None
        self.context_net: nn.Module | None = None
        cond = self.conditioning
        if cond.kind != "none" and condition_features < 1:
            raise ValueError("a conditional pixel model needs condition_features >= 1")
        if cond.kind == "classes":
            self.class_embedding = nn.Embedding(cond.num_classes, condition_features)
        elif cond.kind == "context":
            if cond.context_vocab:
                raise ValueError("pixel models take a float context, not tokens (context_vocab)")
            shape = cond.context_shape
            if len(shape) == 3:
                self.context_net = nn.Conv2d(shape[0], condition_features, 3, padding=1)
            elif len(shape) == 1:
                self.context_net = nn.Linear(shape[0], condition_features)
            else:
                raise ValueError(
                    f"context_shape must be (C', h, w) for an image or (d,) for a vector, "
                    f"got {shape}"
                )

    # -- for subclasses ---------------------------------------------------------------------

    def _check_layers(
        self, num_layers: int, hidden_channels: int, block: str = "block", **kernels: int
    ) -> None:
        """Check the network fields every pixel model has: ``num_layers`` >= 1,
        ``hidden_channels`` a positive multiple of the image channels C (one ``block`` of
        hidden channels per colour), and each kernel named in ``kernels`` odd and >= 3."""
        C = self.event_shape[0]
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if hidden_channels < 1 or hidden_channels % C:
            raise ValueError(
                f"hidden_channels must be a positive multiple of the {C} image channels "
                f"(one {block} per colour), got {hidden_channels}"
            )
        for name, k in kernels.items():
            if k < 3 or k % 2 == 0:
                raise ValueError(f"{name} must be odd and >= 3, got {k}")

    def _head_params(self, inputs: Tensor, cond: Tensor | None) -> Tensor:
        """Head parameters (B, C, P, H, W) from inputs (B, C, H, W) scaled to [-1, 1] and
        the conditioning features (B, F, H, W) or None; see the class docstring."""
        B, C, H, W = inputs.shape
        return self.net(inputs, cond).view(B, C, -1, H, W)  # (B, C, P, H, W)

    def _fast_sampler(self) -> FastSampler | None:
        """The subclass's fast sampler (None: none, ``_fill`` runs the naive loop); see the
        class docstring."""
        return None

    # -- shared pieces ------------------------------------------------------------------------

    def support_hint(self) -> str:
        if self.head == "bernoulli":
            return "binarize the data (--binarize static)"
        return f"give integers 0..{self.levels - 1} (--scale byte for 8-bit images)"

    def ordering(self) -> Tensor:
        """Flattened indices ch·H·W + i·W + j in drawing order: raster order over pixels,
        R -> G -> B inside each, so position (i·W + j)·C + ch."""
        C, H, W = self.event_shape
        index = torch.arange(C * H * W, device=self.device).view(C, H * W)  # (C, HW)
        return index.T.reshape(-1)  # (HW·C,): pixel-major, channel-minor

    def _scale(self, x: Tensor) -> Tensor:
        """x (levels 0..L-1, or binary) -> [-1, 1] in the model's dtype, as the net reads it."""
        return x.to(self.dtype) * (2.0 / (self.levels - 1)) - 1.0

    def _condition_features(self, c: Tensor | None) -> Tensor | None:
        """The checked c as a feature map (B, F, H, W), or None (unconditional)."""
        if c is None:
            return None
        _, H, W = self.event_shape
        if self.class_embedding is not None:
            e = self.class_embedding(c)  # (B, F)
        elif c.dim() == 4:  # a context image (B, C', h, w)
            if c.shape[-2:] != (H, W):
                c = F.interpolate(c, size=(H, W), mode="bilinear", align_corners=False)
            return self.context_net(c)  # (B, F, H, W)
        else:
            e = self.context_net(c)  # (B, F)
        return e[:, :, None, None].expand(-1, -1, H, W)  # (B, F, H, W)

    def _distribution(self, params: Tensor) -> DiscretizedLogisticMixture:
        """The mixture of parameters (..., 3K), K logits, locations and log-scales."""
        logits, loc, log_scale = params.chunk(3, dim=-1)  # (..., K) each
        return DiscretizedLogisticMixture(
            logits, loc, log_scale.clamp(min=MIN_LOG_SCALE), num_levels=self.levels
        )

    def _value_logits(self, params: Tensor) -> Tensor:
        """Per-value logits (..., V) from head parameters (..., P): [0, l] for a Bernoulli
        logit l (V = 2), the L logits, or the mixture's L log-probabilities."""
        if self.head == "bernoulli":
            return torch.cat([torch.zeros_like(params), params], dim=-1)  # (..., 2)
        if self.head == "categorical":
            return params
        return self._distribution(params).all_log_probs()  # (..., L)

    def _params(self, x: Tensor, c: Tensor | None) -> Tensor:
        """Head parameters (B, C, H, W, P) of checked x and c, in one pass."""
        out = self._head_params(self._scale(x), self._condition_features(c))  # (B, C, P, H, W)
        return out.permute(0, 1, 3, 4, 2)  # (B, C, H, W, P)

    # -- the contract -------------------------------------------------------------------------

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x) (or log p(x | c)) in nats, exact, shape (B,)."""
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        params = self._params(x, c)  # (B, C, H, W, P)
        if self.head == "bernoulli":
            lp = -F.binary_cross_entropy_with_logits(params[..., 0], x, reduction="none")
        elif self.head == "categorical":
            lp = params.log_softmax(-1).gather(-1, x[..., None]).squeeze(-1)  # (B, C, H, W)
        else:
            lp = self._distribution(params).log_prob(x)  # (B, C, H, W)
        return lp.flatten(1).sum(-1)

    def conditional_logits(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """Logits (B, D, V) of p(x_d | everything before d) for each flattened d (teacher
        forcing): V = 2 for binary x ([0, logit]), V = num_levels otherwise."""
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        logits = self._value_logits(self._params(x, c))  # (B, C, H, W, V)
        return logits.reshape(len(x), self.num_dims, -1)  # (B, D, V)

    def _draw(self, params: Tensor, generator: torch.Generator | None, T: float) -> Tensor:
        """One draw per row from a sub-pixel's head parameters (B, P) at temperature T:
        float 0/1 for the Bernoulli head, int64 levels otherwise."""
        if self.head == "bernoulli":
            logit = params[:, 0]  # (B,)
            u = torch.rand(logit.shape, generator=generator, device=logit.device, dtype=logit.dtype)
            return (u < torch.sigmoid(logit / T)).to(logit.dtype)
        probs = (self._value_logits(params) / T).softmax(-1)  # (B, L)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    def _fill(
        self,
        flat: Tensor,
        observed: Tensor,
        c: Tensor | None,
        generator: torch.Generator | None,
        T: float,
        fast: bool = True,
    ) -> Tensor:
        """Draw the unobserved entries of flat (B, D) in order (``sample`` and ``complete``):
        with the subclass's fast sampler when it has one and ``fast``, else the naive loop;
        the same pixels either way for the same generator."""
        sampler = self._fast_sampler() if fast else None
        if sampler is None:
            return self._naive_fill(flat, observed, c, generator, T)
        shape = (len(flat), *self.event_shape)
        filled = sampler.fill(flat.view(shape), observed.reshape(shape), c, generator, T)
        return filled.view(len(flat), -1)  # (B, D)

    def _naive_fill(
        self,
        flat: Tensor,
        observed: Tensor,
        c: Tensor | None,
        generator: torch.Generator | None,
        T: float,
    ) -> Tensor:
        """The naive sampler: draw the unobserved entries of flat (B, D) in order, one full
        network pass per dimension (dimensions observed in every row are skipped, with no
        random draw; the others are drawn for every row, observed rows keeping their
        value)."""
        B = len(flat)
        C, H, W = self.event_shape
        cond = self._condition_features(c)  # fixed while drawing
        for d in self.ordering().tolist():
            if bool(observed[:, d].all()):
                continue
            ch, rest = divmod(d, H * W)
            i, j = divmod(rest, W)
            image = self._scale(flat.view(B, C, H, W))
            params = self._head_params(image, cond)[:, ch, :, i, j]  # (B, P)
            draw = self._draw(params, generator, T)
            flat[:, d] = torch.where(observed[:, d], flat[:, d], draw)
        return flat
