"""Dequantization: from discrete levels 0..K-1 to the input of a continuous density.

y = (x + u)/K with u in [0, 1)^D, uniform (Theis, van den Oord & Bethge 2016) or drawn from a
learned q(u | x) (variational, Ho et al. 2019). Not bijections: ``forward`` returns y and
the term that makes log p(y) + term a lower bound on log P(x) in expectation over u;
``inverse`` rounds y back down to x.

References:
    Theis, van den Oord & Bethge 2016, A note on the evaluation of generative models,
    arXiv:1511.01844.
    Ho, Chen, Srinivas, Duan & Abbeel 2019, Flow++, arXiv:1902.00275.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.models.flows.conditioners import MLPConditioner
from dgm.models.flows.transforms import SCALE_BOUND, soft_clamp


class UniformDequantization(nn.Module):
    """Integer levels 0..K−1 → y = (x + u)/K, u ~ U[0, 1)^D (Theis et al. 2016): not a
    bijection but the map from discrete data to a continuous density's input.
    ``forward`` returns (y, −D ln K), the log-det of the 1/K scaling, so that log p(y) +
    log_det is a lower bound (in expectation over u) on log P(x) of the discrete x;
    ``inverse`` rounds back down. The bound is exact for a density uniform on each cell.
    """

    def __init__(self, num_levels: int = 256) -> None:
        super().__init__()
        self.num_levels = num_levels

    def forward(
        self,
        x: Tensor,
        c: Tensor | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(y, log_det) = ((x + u)/K, −D ln K − log q(u | x)) for integer levels x, in the
        dtype of the noise u that ``_draw_noise`` gives."""
        if x.is_floating_point():
            raise ValueError(f"x has dtype {x.dtype}; pass integer levels 0..{self.num_levels - 1}")
        u, log_q = self._draw_noise(x, c, generator, dtype)  # x's shape, (B,)
        D = math.prod(x.shape[1:])
        return (x.to(u.dtype) + u) / self.num_levels, -D * math.log(self.num_levels) - log_q

    def _draw_noise(
        self,
        x: Tensor,
        c: Tensor | None,
        generator: torch.Generator | None,
        dtype: torch.dtype | None,
    ) -> tuple[Tensor, Tensor]:
        """u ~ U[0, 1) (x's shape) in ``dtype`` (default: torch's default float dtype), and
        log q(u | x) = 0 (B,)."""
        dtype = dtype or torch.get_default_dtype()
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=dtype)
        return u, x.new_zeros(len(x), dtype=dtype)

    def inverse(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        return (z * self.num_levels).floor().clamp(0, self.num_levels - 1).long()


class VariationalDequantization(UniformDequantization):
    """Dequantization noise from a learned q(u | x) instead of U[0, 1)^D (Ho et al. 2019,
    Flow++, arXiv:1902.00275): u = sigmoid(μ + exp(s) ⊙ ε), ε ~ N(0, I), with (μ, s) from an
    MLP of x/K (and of c's features). ``forward`` returns (y, −D ln K − log q(u | x)), so
    log p(y) + log_det is a lower bound on log P(x) in expectation over u ~ q, tighter than
    the uniform one when q fits; q is trained with the flow by that same bound.
    """

    def __init__(
        self,
        num_dims: int,
        num_levels: int = 256,
        hidden_sizes: Sequence[int] = (64,),
        cond_features: int = 0,
    ) -> None:
        super().__init__(num_levels)
        self.net = MLPConditioner(num_dims, hidden_sizes, 2, cond_features)

    def noise(self, x: Tensor, eps: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """u in (0, 1) (x's shape) for standard-normal ``eps``, and log q(u | x) (B,)."""
        mu, s = self.net(x.flatten(1).to(eps.dtype) / self.num_levels, c).unbind(1)  # (B, D)
        s = soft_clamp(s, SCALE_BOUND)
        e = eps.flatten(1)  # (B, D)
        v = mu + s.exp() * e
        # log q(u) = log N(ε) − log |dv/dε| − log |du/dv|, du/dv = σ(v) σ(−v)
        log_q = -0.5 * e.pow(2) - 0.5 * math.log(2 * math.pi) - s
        log_q = log_q - F.logsigmoid(v) - F.logsigmoid(-v)
        return torch.sigmoid(v).view_as(eps), log_q.sum(1)

    def _draw_noise(
        self,
        x: Tensor,
        c: Tensor | None,
        generator: torch.Generator | None,
        dtype: torch.dtype | None,
    ) -> tuple[Tensor, Tensor]:
        """u ~ q(u | x) and log q(u | x) in the dtype of q's network (``dtype`` is accepted
        for symmetry)."""
        dtype = self.net.net[-1].weight.dtype
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=dtype)
        return self.noise(x, eps, c)
