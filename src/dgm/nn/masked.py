"""Masked linear layers and the MADE network (Germain et al. 2015): an MLP whose weights
are masked so that output d depends only on the inputs before d in a chosen ordering.

Written once for the autoregressive models (MADE) and for flows (MAF, IAF) to reuse.

References:
    Germain, Gregor, Murray & Larochelle 2015, MADE: Masked Autoencoder for Distribution
    Estimation, arXiv:1502.03509.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedLinear(nn.Linear):
    """A ``nn.Linear`` whose weight is multiplied by a fixed 0/1 ``mask`` (out, in), kept
    as a buffer so it moves and saves with the module. ``mask`` may also be a stack of
    masks (M, out, in): ``forward(x, index)`` then uses mask ``index``.

    Example:
        >>> layer = MaskedLinear(3, 2, torch.tensor([[1.0, 0, 0], [1, 1, 0]]))
        >>> layer(torch.ones(4, 3)).shape
        torch.Size([4, 2])
    """

    def __init__(
        self, in_features: int, out_features: int, mask: Tensor, bias: bool = True
    ) -> None:
        super().__init__(in_features, out_features, bias)
        masks = mask if mask.dim() == 3 else mask[None]  # (M, out, in)
        if masks.shape[1:] != (out_features, in_features):
            raise ValueError(
                f"mask has shape {tuple(mask.shape)}, expected ([M,] {out_features}, {in_features})"
            )
        self.register_buffer("mask", masks.to(self.weight.dtype))

    def forward(self, x: Tensor, index: int = 0) -> Tensor:
        return F.linear(x, self.weight * self.mask[index], self.bias)


def made_degrees(
    ordering: Tensor,
    hidden_sizes: Sequence[int],
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """Degrees of the input and hidden units (Germain et al. 2015, section 4).

    Input d has degree 1 + its position in ``ordering`` (a permutation of 0..D-1). Hidden
    units take degrees in [low, D - 1], low the smallest degree of the layer below: a layer
    at least as wide as that range cycles through it (every degree present, equally often
    to within one); a narrower layer spreads its H degrees evenly over it, both ends
    included (one unit: degree D - 1). The top degree D - 1 is always present, so every
    input but the last in the order reaches the layer whatever H is (cycling from low
    upward would leave the inputs of degree > H connected to no hidden unit: 284 of 784
    at H = 500). ``generator`` shuffles which unit gets which degree (a different
    connectivity for order-agnostic training). Returns [input degrees (D,), hidden layer
    1 (H1,), ...], int64.
    """
    D = len(ordering)
    position = torch.empty_like(ordering)
    position[ordering] = torch.arange(D)
    degrees = [position + 1]
    for h in hidden_sizes:
        top = max(D - 1, 1)
        low = min(int(degrees[-1].min()), top)
        span = top - low + 1
        if h >= span:
            d = low + torch.arange(h) % span  # every degree in [low, D-1]
        else:  # H evenly spaced degrees from D-1 down: both ends when H >= 2
            d = torch.linspace(top, low, h, dtype=torch.float64).round().long().flip(0)
        if generator is not None:
            d = d[torch.randperm(h, generator=generator)]
        degrees.append(d)
    return degrees


def made_masks(
    ordering: Tensor,
    hidden_sizes: Sequence[int],
    num_outputs_per_dim: int = 1,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """The masks (out, in) of each layer of a MADE for ``ordering``.

    Hidden layers connect unit k to input/hidden unit j when deg(k) >= deg(j); the output
    layer is strict, deg(out) > deg(j), so output d sees only inputs before d. Output units
    are laid out dimension-major: unit d * num_outputs_per_dim + k is output k of dim d.

    Example:
        >>> masks = made_masks(torch.arange(3), ())
        >>> masks[0]
        tensor([[0., 0., 0.],
                [1., 0., 0.],
                [1., 1., 0.]])
    """
    degrees = made_degrees(ordering, hidden_sizes, generator)
    masks = [
        (d_out[:, None] >= d_in[None, :]).float() for d_in, d_out in itertools.pairwise(degrees)
    ]
    out = degrees[0].repeat_interleave(num_outputs_per_dim)  # (D * K,)
    masks.append((out[:, None] > degrees[-1][None, :]).float())
    return masks


def natural_ordering(num_dims: int) -> Tensor:
    """0, 1, ..., D-1."""
    return torch.arange(num_dims)


def random_ordering(num_dims: int, generator: torch.Generator) -> Tensor:
    """A random permutation of 0..D-1 drawn with ``generator``."""
    return torch.randperm(num_dims, generator=generator)


class MADE(nn.Module):
    """A masked MLP: (B, D) inputs to (B, D, num_outputs_per_dim) outputs, output d a
    function of the inputs before d in the ordering only (Germain et al. 2015).

    ``orderings`` is one permutation (D,) or M of them (M, D); with M > 1 each ordering gets
    its own connectivity (hidden degrees shuffled by ``seed + m``; mask set 0 is unshuffled)
    and ``forward(x, index)`` picks one, for order-agnostic training. ReLU between layers.

    With ``context_features`` > 0, ``forward(x, index, context)`` also takes a context
    (B, context_features) that enters every unit of the first hidden layer through an
    unmasked linear map, and the outputs directly through a second one, so every output
    depends on it (the first output in the order sees no hidden unit, so it needs the
    direct map) while the masks over x stay as they are (a conditional MADE, as in MAF,
    Papamakarios et al. 2017, arXiv:1705.07057).

    Example:
        >>> net = MADE(4, (16,), num_outputs_per_dim=2)
        >>> net(torch.zeros(3, 4)).shape
        torch.Size([3, 4, 2])
        >>> cnet = MADE(4, (16,), context_features=5)
        >>> cnet(torch.zeros(3, 4), context=torch.zeros(3, 5)).shape
        torch.Size([3, 4, 1])
    """

    def __init__(
        self,
        num_dims: int,
        hidden_sizes: Sequence[int],
        num_outputs_per_dim: int = 1,
        orderings: Tensor | None = None,
        seed: int = 0,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        if orderings is None:
            orderings = natural_ordering(num_dims)
        orderings = orderings if orderings.dim() == 2 else orderings[None]  # (M, D)
        if orderings.shape[1] != num_dims or not all(
            torch.equal(o.sort().values, torch.arange(num_dims)) for o in orderings
        ):
            raise ValueError(f"orderings must be permutations of 0..{num_dims - 1}")
        if context_features < 0:
            raise ValueError(f"context_features must be >= 0, got {context_features}")
        self.context_features = context_features
        self.num_dims, self.num_outputs_per_dim = num_dims, num_outputs_per_dim
        self.register_buffer("orderings", orderings.long().clone())
        sets = []
        for m, order in enumerate(orderings):
            g = torch.Generator().manual_seed(seed + m) if m > 0 else None
            sets.append(made_masks(order, hidden_sizes, num_outputs_per_dim, g))
        sizes = (num_dims, *hidden_sizes, num_dims * num_outputs_per_dim)
        self.layers = nn.ModuleList(
            MaskedLinear(i, o, torch.stack([s[k] for s in sets]))
            for k, (i, o) in enumerate(itertools.pairwise(sizes))
        )
        # context -> every unit of the first hidden layer, and -> every output directly
        # (the first output in the order sees no hidden unit); unmasked, no bias (the
        # masked layers have one). With no hidden layer the first layer is the output.
        cf = context_features
        self.context_in = nn.Linear(cf, sizes[1], bias=False) if cf else None
        self.context_out = nn.Linear(cf, sizes[-1], bias=False) if cf and hidden_sizes else None

    @property
    def num_masks(self) -> int:
        return len(self.orderings)

    def forward(self, x: Tensor, index: int = 0, context: Tensor | None = None) -> Tensor:
        self._check_context(context, len(x))
        h = x
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            h = layer(h, index)
            if context is not None and k == 0:
                h = h + self.context_in(context.to(h.dtype))
            if context is not None and k == last and self.context_out is not None:
                h = h + self.context_out(context.to(h.dtype))
            if k < last:
                h = F.relu(h)
        return h.view(len(x), self.num_dims, self.num_outputs_per_dim)  # (B, D, K)

    def _check_context(self, context: Tensor | None, batch: int) -> None:
        if self.context_features == 0:
            if context is not None:
                raise ValueError(
                    "this MADE takes no context; build it with "
                    "context_features=<context size> to condition on one"
                )
            return
        expected = (batch, self.context_features)
        if context is None or tuple(context.shape) != expected:
            got = None if context is None else tuple(context.shape)
            raise ValueError(
                f"context has shape {got}, expected {expected} (batch, context_features)"
            )
