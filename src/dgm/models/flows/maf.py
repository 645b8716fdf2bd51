"""Masked autoregressive flow (MAF) and inverse autoregressive flow (IAF).

Both stack MADE-driven affine autoregressive transforms with reversals between them.
MAF conditions each step on the data side: its density takes one MADE pass per step and
sampling D passes. IAF is the same transform turned around (``Inverse``), conditioned on
the noise side: sampling takes one pass per step, its density D passes (slow for large D;
offered for completeness and for the speed comparison).

References:
    Papamakarios, Pavlakou & Murray 2017, Masked Autoregressive Flow for Density
    Estimation, arXiv:1705.07057.
    Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling 2016, Improved Variational
    Inference with Inverse Autoregressive Flow, arXiv:1606.04934.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from dgm.model import ClassConditional, ContextConditional
from dgm.models.flows.base import FlowConfig, FlowModel
from dgm.models.flows.transforms import (
    SCALE_BOUND,
    BatchNormFlow,
    Bijection,
    Chain,
    Inverse,
    MaskedAffineAutoregressive,
    Reshape,
    Reverse,
)
from dgm.registry import register


@dataclasses.dataclass
class MAFConfig(FlowConfig, ContextConditional, ClassConditional):
    num_transforms: int = 5  # MADE-affine steps (5, as in the zuko/normflows comparison)
    hidden_sizes: tuple[int, ...] = (64, 64)  # widths of each step's MADE, e.g. 64,64
    scale_bound: float = SCALE_BOUND  # |log scale| per step soft-clamped below this
    batch_norm: bool = False  # a BatchNorm bijection between steps (Papamakarios et al.)


@dataclasses.dataclass
class IAFConfig(MAFConfig):
    """The same fields as MAF's; IAF's density costs D passes per step."""


def _check(config: MAFConfig) -> None:
    if config.num_transforms < 1:
        raise ValueError(f"num_transforms must be >= 1, got {config.num_transforms}")
    if config.scale_bound <= 0:
        raise ValueError(f"scale_bound must be positive, got {config.scale_bound}")


def _chain(model: FlowModel, config: MAFConfig, inverse: bool) -> Bijection:
    """Flatten, then steps of MADE-affine (inverted for IAF), [batch norm,] reversal."""
    _check(config)
    D, shape = model.num_dims, tuple(model.event_shape)
    steps: list[Bijection] = [Reshape(shape, (D,))]
    for k in range(config.num_transforms):
        made = MaskedAffineAutoregressive(
            D, config.hidden_sizes, model.cond_width, config.scale_bound
        )
        steps.append(Inverse(made) if inverse else made)
        if k < config.num_transforms - 1:
            steps += [BatchNormFlow(D)] if config.batch_norm else []
            steps.append(Reverse())
    steps.append(Reshape((D,), shape))
    return Chain(steps)


@register("maf", MAFConfig)
class MAF(FlowModel):
    """Masked autoregressive flow (Papamakarios et al. 2017): exact log_prob in nats.

    Each step z_d = x_d exp(−α_d(x_<d)) − μ_d(x_<d) with (μ, α) from a MADE over the
    flattened x, the order reversed between steps. Density: one MADE pass per step;
    sampling: D passes per step. ``num_classes``/``context_shape`` condition every MADE.
    ``batch_norm`` puts a ``BatchNormFlow`` between steps, as the paper does: it
    normalises by the batch only in a training ``loss``, by its running statistics
    everywhere else (``log_prob`` in eval, ``encode``, ``decode``, ``sample``).

    References:
        Papamakarios, Pavlakou & Murray 2017, arXiv:1705.07057.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("maf", (2,), num_transforms=2, hidden_sizes=(8,))
        >>> x = model.sample(3, generator=torch.Generator().manual_seed(0))
        >>> x.shape, model.log_prob(x).shape
        (torch.Size([3, 2]), torch.Size([3]))
    """

    def __init__(self, event_shape: Iterable[int], config: MAFConfig) -> None:
        super().__init__(event_shape, config)
        self.transform = _chain(self, config, inverse=False)


@register("iaf", IAFConfig)
class IAF(FlowModel):
    """Inverse autoregressive flow (Kingma et al. 2016): sampling in one pass per step.

    Sampling runs x_d = z_d exp(−α_d(z_<d)) − μ_d(z_<d), one MADE pass per step; the
    exact log_prob inverts it, D MADE passes per step (slow for large D: use MAF to fit
    densities, IAF where fast sampling matters). Same config as MAF.

    References:
        Kingma et al. 2016, arXiv:1606.04934.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("iaf", (2,), num_transforms=2, hidden_sizes=(8,))
        >>> x = model.sample(3, generator=torch.Generator().manual_seed(0))
        >>> x.shape, model.log_prob(x).shape
        (torch.Size([3, 2]), torch.Size([3]))
    """

    def __init__(self, event_shape: Iterable[int], config: IAFConfig) -> None:
        super().__init__(event_shape, config)
        self.transform = _chain(self, config, inverse=True)
