"""Real-valued neural autoregressive density estimator (RNADE).

p(x) = Π_d p(x_d | x_<d) over real x, each conditional a mixture of K Gaussians whose
mixing logits, means and log-scales are read off NADE's hidden vector h_d = σ(ρ_d a_d),
a_d = c + W_{:, <d} x_{<d}: one weight matrix W (H × D) shared by every conditional, so all
D hidden vectors cost O(H D), the running activation growing by W_{:, d} x_d per dimension.

References:
    Uria, Murray & Larochelle 2013, RNADE: The real-valued neural autoregressive
    density-estimator, NeurIPS, arXiv:1306.0186.
    Larochelle & Murray 2011, The Neural Autoregressive Distribution Estimator, AISTATS.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import constraints

from dgm.model import ClassConditional, ContextConditional, Likelihood
from dgm.models.autoregressive.fixed_order import DrawsInOrder
from dgm.registry import register

LOG_SCALE_MIN, LOG_SCALE_MAX = -7.0, 5.0  # clamp on each component's log σ: σ in [9e-4, 148]
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclasses.dataclass
class RNADEConfig(ContextConditional, ClassConditional):
    hidden_size: int = 50  # H, hidden units shared by all conditionals (50 for small tabular x)
    num_components: int = 10  # K, Gaussians in the mixture of each conditional p(x_d | x_<d)
    rescale: bool = True  # the paper's ρ_d: h_d = σ(ρ_d a_d), one learned scale per dimension


@dataclasses.dataclass
class RNADESampleOptions:
    temperature: float = 1.0  # multiply every component's σ by T (< 1: draws nearer the means)


@register("rnade", RNADEConfig)
class RNADE(DrawsInOrder):
    """RNADE (Uria, Murray & Larochelle 2013): exact log_prob in nats over real x.

    All D conditionals come from one pass: a_d = c + Σ_{j<d} W_{:, j} x_j is an exclusive
    cumulative sum over d, h_d = σ(ρ_d a_d), and per-dimension output weights map h_d to
    K mixing logits, K means and K log-scales (clamped to [LOG_SCALE_MIN, LOG_SCALE_MAX]).
    Sampling runs the same recursion one dimension at a time (O(H D) per draw, plus K per
    conditional); the ``temperature`` option multiplies the components' σ. With
    ``num_classes`` K > 0 it is p(x | c) for labels c: a learned hidden bias per class,
    e_c (H,), joins c in every a_d (zero at the start), so the cost stays O(H D). With a
    ``context_shape`` it is p(x | c) for a float context c: the hidden bias is U c (U: H ×
    dim c, learned), e.g. a dynamics model p(Δs | s, a) (``dgm.tasks.control``).

    References:
        Uria, Murray & Larochelle 2013, arXiv:1306.0186; Larochelle & Murray 2011 (AISTATS).

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("rnade", (2,), hidden_size=8, num_components=3)
        >>> x = model.sample(4, generator=torch.Generator().manual_seed(0))
        >>> x.shape, model.log_prob(x).shape
        (torch.Size([4, 2]), torch.Size([4]))
    """

    likelihood = Likelihood.EXACT
    support = constraints.real
    sample_options = RNADESampleOptions

    def __init__(self, event_shape: Iterable[int], config: RNADEConfig) -> None:
        super().__init__(event_shape, config)
        if config.hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {config.hidden_size}")
        if config.num_components < 1:
            raise ValueError(f"num_components must be >= 1, got {config.num_components}")
        D, H, K = self.num_dims, config.hidden_size, config.num_components
        self.W = nn.Parameter(torch.randn(H, D) / math.sqrt(D))  # (H, D) input weights
        self.c = nn.Parameter(torch.zeros(H))  # (H,) hidden bias
        # ρ_d, stored as log ρ_d so it stays positive; absent without rescaling
        self.log_rho = nn.Parameter(torch.zeros(D)) if config.rescale else None  # (D,)
        # per-dimension output weights to [logits | means | log-scales], (D, H, 3K) and (D, 3K)
        self.V = nn.Parameter(torch.randn(D, H, 3 * K) * (0.1 / math.sqrt(H)))
        b = torch.zeros(D, 3, K)  # (D, 3, K)
        b[:, 1] = torch.randn(D, K)  # spread the means at the start: the components differ
        self.b = nn.Parameter(b.view(D, 3 * K))  # (D, 3K)
        C = self.num_classes
        self.class_hidden = nn.Parameter(torch.zeros(C, H)) if C else None  # (C, H)
        width = math.prod(config.context_shape) if config.context_shape else 0
        self.context_hidden = nn.Linear(width, H, bias=False) if width else None  # U: (H, dim c)

    # -- the network --------------------------------------------------------------------------

    def _hidden_bias(self, c: Tensor | None, batch: int) -> Tensor:
        """c, plus the class's hidden bias for labels c or U c for a context c: (B, H)."""
        if c is None:
            return self.c.expand(batch, -1)  # (B, H)
        if self.context_hidden is not None:
            return self.c + self.context_hidden(c.flatten(1))  # (B, H)
        return self.c + self.class_hidden[c]  # (B, H)

    def _hidden(self, a: Tensor, d: slice | int) -> Tensor:
        """h = σ(ρ_d a) for the running activations a of dimension(s) d."""
        if self.log_rho is not None:
            rho = self.log_rho[d].exp()  # (D,) or ()
            a = a * (rho[:, None] if rho.dim() else rho)
        return torch.sigmoid(a)

    def _params(self, h: Tensor, d: slice | int) -> tuple[Tensor, Tensor, Tensor]:
        """Mixture (logits, means, log-scales) of dimension(s) d from h: h (B, D, H) with a
        slice gives three (B, D, K); h (B, H) with one d gives three (B, K)."""
        if isinstance(d, int):
            out = h @ self.V[d] + self.b[d]  # (B, 3K)
        else:
            out = torch.einsum("bdh,dhk->bdk", h, self.V[d]) + self.b[d]  # (B, D, 3K)
        logits, means, log_scales = out.chunk(3, dim=-1)  # each (..., K)
        return logits, means, log_scales.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)

    def mixture_params(
        self, flat: Tensor, c: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(logits, means, log-scales), each (B, D, K), of every p(x_d | x_<d[, c]) from
        flattened x (B, D) and checked labels c (B,) or None, in one O(H D) pass (teacher
        forcing): output d depends on x_<d (and c) only."""
        contrib = flat[:, :, None] * self.W.T  # (B, D, H): W_{:, d} x_d
        before = contrib.cumsum(1)[:, :-1]  # (B, D-1, H): Σ_{j<=d} W_{:, j} x_j
        bias = self._hidden_bias(c, len(flat))[:, None]  # (B, 1, H)
        a = F.pad(before, (0, 0, 1, 0)) + bias  # (B, D, H): exclusive sum, j < d
        return self._params(self._hidden(a, slice(None)), slice(None))

    # -- the contract -------------------------------------------------------------------------

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x) in nats, exact, shape (B,)."""
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        flat = x.flatten(1)  # (B, D)
        return mixture_log_prob(flat, *self.mixture_params(flat, c)).sum(-1)

    # -- sampling: the O(H D) recursion, one dimension at a time -------------------------------

    def _fill(
        self,
        flat: Tensor,
        observed: Tensor,
        c: Tensor | None,
        generator: torch.Generator | None,
        T: float,
    ) -> Tensor:
        """Draw the unobserved entries of flat (B, D) in order, one hidden update each."""
        a = self._hidden_bias(c, len(flat))  # (B, H)
        for d in range(self.num_dims):
            if not bool(observed[:, d].all()):
                logits, means, log_scales = self._params(self._hidden(a, d), d)  # (B, K) each
                draw = draw_mixture(logits, means, log_scales, generator, T)  # (B,)
                flat[:, d] = torch.where(observed[:, d], flat[:, d], draw)
            a = a + flat[:, d, None] * self.W[:, d]  # (B, H)
        return flat


def mixture_log_prob(x: Tensor, logits: Tensor, means: Tensor, log_scales: Tensor) -> Tensor:
    """log Σ_k π_k N(x | μ_k, σ_k²) in nats, by log-sum-exp: x (...), parameters (..., K)."""
    z = (x[..., None] - means) * torch.exp(-log_scales)  # (..., K) standardised
    log_normal = -0.5 * z.square() - log_scales - HALF_LOG_2PI  # (..., K)
    return torch.logsumexp(logits.log_softmax(-1) + log_normal, dim=-1)  # (...)


def draw_mixture(
    logits: Tensor,
    means: Tensor,
    log_scales: Tensor,
    generator: torch.Generator | None,
    T: float = 1.0,
) -> Tensor:
    """One draw per row of a mixture of Gaussians (B, K), each σ multiplied by T: (B,)."""
    k = torch.multinomial(logits.softmax(-1), 1, generator=generator)  # (B, 1)
    mu = means.gather(-1, k).squeeze(-1)  # (B,)
    sigma = log_scales.gather(-1, k).squeeze(-1).exp()  # (B,)
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + T * sigma * eps
