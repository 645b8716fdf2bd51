"""The flow model: a standard-normal base and a chain of bijections, with an exact density.

log p(x | c) = log N(z; 0, I) + log |det ∂z/∂x|, z = f(x; c), in nats: change of variables.
A model of the family builds ``self.transform`` (a ``Bijection``, data → noise, z of
``event_shape``); this class gives it the contract, ``Encodable`` (the base space) and
``as_distribution`` (a ``torch.distributions.Distribution`` conditioned on c, as zuko's flows).

Units, written once (for flows on 8-bit images). With ``dequantize`` "uniform" (or
"variational") the model takes INTEGER x in 0..L−1, L = ``num_levels`` (``--scale byte``
gives 0..255 for every image dataset, digits included: L = 256), and dequantizes inside:
y = (x + u)/L with u ~ U[0, 1)^D (or u ~ q(u | x)), then, unless ``logit_alpha`` is None,
y ↦ logit(α + (1 − 2α) y), and the flow's density of that. ``log_prob(x)`` is

    log p_flow(logit(y)) + log |d logit / dy| − D ln L  (− log q(u | x), variational),

whose expectation over u is a lower bound on log P(x), the probability of the discrete x
on the 0..L−1 scale (Theis et al. 2016); ``likelihood`` is ``Likelihood.DEQUANTIZED``. So
bits/dim = −log_prob / (D ln 2) with no correction anywhere else: ``dgm eval`` reports it
as it is (``bound: dequantized``, ``levels: L``). A density uniform on [0, 1)^D gives
exactly log2 L bits/dim (8 for bytes). ``encode`` reads the cell centres u = ½, and
``decode`` and ``sample`` round y down to the level, so samples are integers 0..L−1.
With ``dequantize="none"`` (the default) x is real and ``log_prob`` is its exact density.

References:
    Rezende & Mohamed 2015, Variational Inference with Normalizing Flows, arXiv:1505.05770.
    Papamakarios et al. 2021, Normalizing Flows for Probabilistic Modeling and Inference,
    arXiv:1912.02762.
    Theis, van den Oord & Bethge 2016, A note on the evaluation of generative models,
    arXiv:1511.01844.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, Independent, Normal, constraints

from dgm.model import GenerativeModel, Likelihood, Loss
from dgm.models.flows.dequantization import UniformDequantization, VariationalDequantization
from dgm.models.flows.transforms import ActNorm, Bijection, LogitTransform, batch_statistics

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
Dequantize = Literal["none", "uniform", "variational"]  # none: real x, no dequantization


@dataclasses.dataclass
class FlowConfig:
    """The fields every flow's config starts with: how integer data reach the density."""

    dequantize: Dequantize = "none"  # uniform/variational: integer x (--scale byte), y = (x+u)/L
    num_levels: int = 256  # L, values of an integer x when dequantized (8-bit, --scale byte: 256)
    logit_alpha: float | None = 0.05  # dequantized y -> logit(a + (1-2a) y) first; none: no logit


@dataclasses.dataclass
class FlowSampleOptions:
    temperature: float = 1.0  # scale of the base noise: z ~ N(0, T² I) (< 1: typical draws)


class FlowModel(GenerativeModel):
    """A normalizing flow: z = f(x; c) ~ N(0, I) over ``event_shape``, log_prob in nats,
    exact for real x and the dequantization bound for integer x (``FlowConfig.dequantize``,
    see the module docstring).

    Subclasses set ``self.transform`` after calling this ``__init__``; the condition
    reaches every conditioner as a feature vector of width ``cond_width`` (a one-hot label
    for ``num_classes``, the flattened context for ``context_shape``).

    Example:
        >>> import dgm
        >>> model = dgm.create(
        ...     "realnvp", (1, 4, 4), architecture="conv", hidden_channels=4, dequantize="uniform"
        ... )
        >>> x = torch.randint(256, (3, 1, 4, 4))  # 8-bit pixels (--scale byte)
        >>> bits = -model.log_prob(x) / (16 * math.log(2))  # bits/dim on the 0..255 scale
        >>> model.likelihood.value, bits.shape, model.sample(2).dtype
        ('dequantized', torch.Size([3]), torch.int64)
    """

    likelihood = Likelihood.EXACT
    support = constraints.real
    sample_options = FlowSampleOptions
    transform: Bijection

    def __init__(self, event_shape: Iterable[int], config: Any) -> None:
        super().__init__(event_shape, config)
        cond = self.conditioning
        if cond.context_vocab or cond.optional:
            raise ValueError("flows take class labels or a float context, without dropout")
        widths = {"none": 0, "classes": cond.num_classes, "context": math.prod(cond.context_shape)}
        self.cond_width = widths[cond.kind]  # features the conditioners read per example
        self.dequantizer: UniformDequantization | None = None
        self.logit: LogitTransform | None = None
        mode = getattr(config, "dequantize", "none")
        if mode not in ("none", "uniform", "variational"):
            raise ValueError(f"dequantize must be none, uniform or variational, got {mode!r}")
        if mode != "none":
            L = config.num_levels
            if L < 2:
                raise ValueError(f"num_levels must be >= 2 to dequantize, got {L}")
            self.support = constraints.integer_interval(0, L - 1)
            self.likelihood = Likelihood.DEQUANTIZED
            if mode == "uniform":
                self.dequantizer = UniformDequantization(L)
            else:
                self.dequantizer = VariationalDequantization(
                    self.num_dims, L, (64,), self.cond_width
                )
            if config.logit_alpha is not None:
                if not 0 <= config.logit_alpha < 0.5:
                    raise ValueError(
                        f"logit_alpha must lie in [0, 0.5) (or none: no logit), "
                        f"got {config.logit_alpha}"
                    )
                self.logit = LogitTransform(config.logit_alpha)

    @property
    def num_levels(self) -> int:
        """L, the levels of integer x when the model dequantizes; 0 for real x."""
        return 0 if self.dequantizer is None else self.dequantizer.num_levels

    # -- condition features ---------------------------------------------------------------

    def features(self, c: Tensor | int | None, n: int) -> Tensor | None:
        """c checked (``check_c``) and as the conditioners read it: (n, cond_width), or None."""
        c = self.check_c(c, n)
        if c is None:
            return None
        if self.conditioning.kind == "classes":
            return F.one_hot(c, self.conditioning.num_classes).to(self.dtype)  # (n, K)
        return c.flatten(1)  # (n, prod(context_shape))

    # -- the contract ---------------------------------------------------------------------

    def base_log_prob(self, z: Tensor) -> Tensor:
        """log N(z; 0, I) in nats, summed over the event: (B,)."""
        return -0.5 * z.pow(2).flatten(1).sum(1) - self.num_dims * HALF_LOG_2PI

    def check_x(self, x: Tensor) -> Tensor:
        if not self.integer_data and isinstance(x, Tensor) and not x.is_floating_point():
            raise ValueError(
                f"x has dtype {x.dtype} but {type(self).__name__} models real-valued x: pass a "
                "float tensor, or for integer levels (--scale byte images) build it with "
                "dequantize='uniform' (--dequantize uniform)"
            )
        return super().check_x(x)

    def support_hint(self) -> str:
        return f"give integers 0..{self.num_levels - 1} (--scale byte for 8-bit images)"

    def log_prob(self, x: Tensor, c: Tensor | int | None = None) -> Tensor:
        """log p(x | c) in nats, shape (B,): exact for real x; for integer x (``dequantize``)
        the one-draw dequantization bound on log P(x) of the module docstring."""
        x = self.check_x(x)
        h = self.features(c, len(x))
        y, pre = self.flow_input(x, h)
        z, log_det = self.transform(y, h)
        return self.base_log_prob(z) + log_det + pre

    def loss(self, x: Tensor, c: Tensor | int | None = None, *, phase: str = "main") -> Loss:
        """Mean −log_prob (nats); BatchNorm layers, in training mode, normalise by this
        batch (everywhere else they use their running statistics: an exact bijection).
        Dequantized models also log ``bits_per_dim`` (on the 0..L−1 scale)."""
        self._check_phase(phase)
        with batch_statistics(self, self.training):
            nll = -self.log_prob(x, c).mean()
        metrics = {"nll": nll.detach()}
        if self.dequantizer is not None:
            metrics["bits_per_dim"] = nll.detach() / (self.num_dims * math.log(2))
        return Loss(nll, metrics)

    def flow_input(
        self, x: Tensor, h: Tensor | None, *, centre: bool = False
    ) -> tuple[Tensor, Tensor]:
        """What the transform reads and the log-det of getting there, (B,): x itself and 0
        for real x; for integer x, y = (x + u)/L (u drawn, or ½ with ``centre``) with
        −D ln L (− log q(u | x)), then the logit transform and its log-det."""
        if self.dequantizer is None:
            return x, x.new_zeros(len(x))
        if centre:
            L = self.dequantizer.num_levels
            y = (x.to(self.dtype) + 0.5) / L
            pre = y.new_full((len(x),), -self.num_dims * math.log(L))
        else:
            y, pre = self.dequantizer(x, h, dtype=self.dtype)
        if self.logit is not None:
            y, log_det = self.logit(y)
            pre = pre + log_det
        return y, pre

    def flow_output(self, y: Tensor) -> Tensor:
        """The inverse of ``flow_input`` up to the dequantization noise: the integer level
        below y (after undoing the logit) for integer data, y itself for real data."""
        if self.dequantizer is None:
            return y
        if self.logit is not None:
            y = self.logit.inverse(y)
        return self.dequantizer.inverse(y)

    @torch.no_grad()
    def initialize(self, x: Tensor, c: Tensor | int | None = None) -> None:
        """ActNorm's data-dependent initialisation on this batch (Kingma & Dhariwal 2018):
        one pass in which only the uninitialised ActNorm layers run in training mode, each
        setting its bias and scale so that the batch leaves it with zero mean and unit
        variance per channel. Initialised ones, and BatchNorm statistics, stay as they are."""
        pending = [m for m in self.modules() if isinstance(m, ActNorm) and not m.initialized]
        if not pending:
            return
        modes = {m: m.training for m in self.modules()}
        self.eval()
        for m in pending:
            m.train()
        try:
            self.log_prob(x, c)
        finally:
            for m, mode in modes.items():
                m.train(mode)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        c: Tensor | int | None = None,
        *,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Tensor:
        """n draws x = f⁻¹(T·ε; c), ε ~ N(0, I): shape (n, *event_shape). Option
        ``temperature`` T scales the base noise."""
        opts = self.sample_settings(options)
        if not opts.temperature > 0:
            raise ValueError(f"temperature must be positive, got {opts.temperature}")
        h = self.features(c, n)
        z = self._noise(n, generator) * opts.temperature
        return self.flow_output(self.transform.inverse(z, h))

    def _noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        shape = (n, *self.event_shape)
        return torch.randn(shape, generator=generator, device=self.device, dtype=self.dtype)

    # -- Encodable: the base space --------------------------------------------------------

    def prior(self) -> Distribution:
        """N(0, I) over ``event_shape``, the base distribution."""
        zeros = torch.zeros(self.event_shape, device=self.device, dtype=self.dtype)
        return Independent(Normal(zeros, torch.ones_like(zeros)), len(self.event_shape))

    def encode(self, x: Tensor, c: Tensor | int | None = None) -> Tensor:
        """z = f(x; c), deterministic (integer x: at the cell centres u = ½), with the
        running statistics of any BatchNorm: shape (B, *event_shape)."""
        x = self.check_x(x)
        h = self.features(c, len(x))
        return self.transform(self.flow_input(x, h, centre=True)[0], h)[0]

    def decode(self, z: Tensor, c: Tensor | int | None = None) -> Tensor:
        """x = f⁻¹(z; c), the exact inverse of ``encode`` (integer x: the level whose cell
        holds f⁻¹(z)): shape (B, *event_shape)."""
        if z.dim() != len(self.event_shape) + 1 or z.shape[1:] != self.event_shape:
            dims = ", ".join(map(str, self.event_shape))
            raise ValueError(f"z has shape {tuple(z.shape)}, expected (batch, {dims})")
        h = self.features(c, len(z))
        return self.flow_output(self.transform.inverse(z.to(self.dtype), h))

    # -- as a torch distribution ----------------------------------------------------------

    def as_distribution(self, c: Tensor | int | None = None) -> Distribution:
        """p(x | c) as a ``torch.distributions.Distribution`` (``log_prob``, ``sample``,
        ``rsample``): batch shape (B,) for a batch of B conditions, () for one or none."""
        return FlowDistribution(self, c)


class FlowDistribution(Distribution):
    """A flow conditioned on c as a ``torch.distributions.Distribution``: event shape the
    model's, batch shape (B,) for B conditions (labels (B,) or contexts (B, *shape)), else ().
    ``rsample`` keeps the graph to the flow's parameters (reparameterised draws); a
    dequantized flow's draws are integers, which ``sample`` gives and ``rsample`` refuses."""

    has_rsample = True
    arg_constraints: dict[str, constraints.Constraint] = {}  # noqa: RUF012

    def __init__(self, model: FlowModel, c: Tensor | int | None = None) -> None:
        self.model = model
        cond = model.conditioning
        batch: tuple[int, ...] = ()
        if c is not None:
            c = torch.as_tensor(c, device=model.device)
            single = () if cond.kind == "classes" else tuple(cond.context_shape)
            if c.dim() > len(single):
                batch = (len(c),)
        self.c = c
        super().__init__(torch.Size(batch), model.event_shape, validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.independent(self.model.support, len(self.event_shape))

    def _conditions(self, n: int) -> Tensor | None:
        """c repeated for n rows that cycle over the batch: (n, ...) or None."""
        if self.c is None or not self.batch_shape:
            return self.c
        return self.c.repeat(n // len(self.c), *([1] * (self.c.dim() - 1)))

    def log_prob(self, value: Tensor) -> Tensor:
        lead = value.shape[: value.dim() - len(self.event_shape)]  # (*sample, *batch)
        flat = value.reshape(-1, *self.event_shape)  # (N, *event)
        return self.model.log_prob(flat, self._conditions(len(flat))).view(lead)

    def _draw(self, sample_shape: torch.Size | tuple[int, ...]) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        n = math.prod(shape)
        m = self.model
        h = m.features(self._conditions(n), n)
        x = m.flow_output(m.transform.inverse(m._noise(n, None), h))  # (n, *event)
        return x.view(*shape, *self.event_shape)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        if self.model.integer_data:
            raise ValueError(
                "a dequantized flow draws integer levels, which carry no reparameterised "
                "gradient: use sample()"
            )
        return self._draw(sample_shape)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        with torch.no_grad():
            return self._draw(sample_shape)
