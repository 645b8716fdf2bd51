"""Energy-based model p(x) ∝ exp(−E_θ(x)), trained by contrastive divergence or score matching.

``objective`` = ``cd``: contrastive divergence with short-run SGLD from a replay buffer
(Du & Mordatch 2019). The gradient of the negative log-likelihood is
E_data[∇E(x)] − E_model[∇E(x)]; the model expectation is estimated on negatives x− drawn
by ``sgld_steps`` Langevin steps (``dgm.models.energy.sgld.SGLD``) that start from the
replay buffer, or, with probability ``restart_prob``, afresh from uniform noise on
``init_range``; the chains' ends go back into the buffer. The loss adds the regulariser
α (E(x+)² + E(x−)²) that keeps the energies near 0.

``objective`` = ``dsm``: denoising score matching (Vincent 2011). With x̃ = x + σ ε, the
score s(x̃) = −∇E(x̃) is fitted to −ε/σ, the score of q(x̃ | x); the minimiser is the score
of the noised data density (the data convolved with N(0, σ² I)). The loss is
½ E‖σ s(x̃) + ε‖² (σ² times Vincent's objective, so it stays O(D) for every σ).

References:
    Du & Mordatch 2019, Implicit Generation and Generalization in Energy-Based Models,
    arXiv:1903.08689.
    Hinton 2002, Training Products of Experts by Minimizing Contrastive Divergence, Neural
    Computation 14(8).
    Vincent 2011, A Connection Between Score Matching and Denoising Autoencoders, Neural
    Computation 23(7).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import Tensor

from dgm.model import ClassConditional, GenerativeModel, Likelihood, Loss
from dgm.models.energy.nets import EnergyConv, EnergyMLP
from dgm.models.energy.sgld import SGLD
from dgm.registry import register

QUADRATURE_CHUNK = 16384  # grid points per forward pass of the quadrature


@dataclasses.dataclass
class EBMConfig(ClassConditional):
    architecture: Literal["mlp", "conv"] = "mlp"  # mlp: any data; conv: images (C, H, W)
    hidden_sizes: tuple[int, ...] = (128, 128)  # MLP widths (mlp only), SiLU between
    conv_channels: int = 32  # width of the conv net (conv only)
    objective: Literal["cd", "dsm"] = "cd"  # contrastive divergence (SGLD), or score matching
    sgld_steps: int = 60  # SGLD steps per negative in cd training (Du & Mordatch: 60)
    sgld_step_size: float = 0.01  # ε of x ← x − ε∇E(x) + τ√(2ε)ξ (toys of std ~0.2: 0.01)
    sgld_noise: float = 1.0  # τ: 1 is exact Langevin, < 1 colder chains (images: ~0.01)
    replay_size: int = 10000  # chains kept in the replay buffer (cd; saved with the weights)
    restart_prob: float = 0.05  # share of cd chains restarted from uniform noise each step
    init_range: tuple[float, float] = (-4.0, 4.0)  # fresh chains start uniform in [low, high]^D
    clamp: bool = False  # keep SGLD chains inside init_range (images: set it to the data range)
    energy_reg: float = 0.1  # α of α(E(x+)² + E(x−)²) (cd; Du & Mordatch: 1)
    dsm_sigma: float = 0.1  # σ of the denoising noise (dsm): the model is of the noised data
    quadrature_range: tuple[float, float] = (-5.0, 5.0)  # box [low, high]^D of log Z (D <= 2)
    quadrature_points: int = 128  # midpoint-rule points per axis of that box (D <= 2)


@dataclasses.dataclass
class EBMSampleOptions:
    steps: int = 200  # SGLD steps from the start points
    step_size: float | None = None  # ε; none: the training's sgld_step_size
    noise: float | None = None  # τ (1 = exact Langevin); none: the training's sgld_noise
    init: Literal["noise", "replay"] = "noise"  # start uniform on init_range, or from the buffer


@register("ebm", EBMConfig)
class EBM(GenerativeModel):
    """Energy-based model (Du & Mordatch 2019): p(x) ∝ exp(−E(x)), sampled by SGLD.

    E is an MLP (any event shape) or a small conv net (images); with ``num_classes`` K > 0
    it has one output per class, E(x, y), so p(x | y) ∝ exp(−E(x, y)). Training by
    ``objective`` cd (contrastive divergence with a replay buffer of ``replay_size``
    persistent chains, a torch buffer saved with the weights, so a resumed run continues
    exactly) or dsm (denoising score matching); see the module docstring.

    Likelihood: for D ≤ 2 dimensions ``log_prob`` is −E(x) − log Z with Z = ∫ exp(−E)
    computed by the midpoint rule on ``quadrature_points``^D cells covering the box
    ``quadrature_range``^D, and ``likelihood`` is EXACT (exact up to the quadrature error
    and the mass outside the box, both negligible when the box holds the data with a margin
    and the cells are small against its features). For D > 2 Z is intractable:
    ``likelihood`` is NONE and ``log_prob`` raises; ``energy`` gives E(x).

    ``sample`` runs SGLD (options ``steps``, ``step_size``, ``noise``, ``init``) and
    ``complete`` runs it on the missing dimensions only. Both use input gradients under
    ``torch.enable_grad()``, so they work inside ``torch.no_grad()`` and leave no parameter
    gradients behind.

    References:
        Du & Mordatch 2019, arXiv:1903.08689; Vincent 2011 (denoising score matching).

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("ebm", (2,), hidden_sizes=(16,), quadrature_points=50)
        >>> x = model.sample(4, generator=torch.Generator().manual_seed(0), steps=10)
        >>> x.shape, model.log_prob(x).shape, model.likelihood.value
        (torch.Size([4, 2]), torch.Size([4]), 'exact')
    """

    likelihood = Likelihood.NONE  # per instance: EXACT for D <= 2 (quadrature), see above
    sample_options = EBMSampleOptions

    def __init__(self, event_shape: Iterable[int], config: EBMConfig) -> None:
        super().__init__(event_shape, config)
        cfg = config
        for name in ("init_range", "quadrature_range"):
            low, high = getattr(cfg, name)
            if not low < high:
                raise ValueError(f"{name} must be (low, high) with low < high, got {(low, high)}")
        if cfg.objective not in ("cd", "dsm"):
            raise ValueError(f"objective must be cd or dsm, got {cfg.objective!r}")
        if cfg.quadrature_points < 2:
            raise ValueError(f"quadrature_points must be >= 2, got {cfg.quadrature_points}")
        if not 0 <= cfg.restart_prob <= 1:
            raise ValueError(f"restart_prob must lie in [0, 1], got {cfg.restart_prob}")
        if cfg.dsm_sigma <= 0 or cfg.energy_reg < 0:
            raise ValueError("dsm_sigma must be positive and energy_reg >= 0")
        if cfg.objective == "cd" and cfg.replay_size < 1:
            raise ValueError(f"replay_size must be >= 1 for objective cd, got {cfg.replay_size}")
        self.sampler()  # refuses a bad sgld_step_size, sgld_steps or sgld_noise now
        out = max(1, self.num_classes)
        if cfg.architecture == "conv":
            self.net = EnergyConv(tuple(self.event_shape), cfg.conv_channels, out)
        elif cfg.architecture == "mlp":
            self.net = EnergyMLP(tuple(self.event_shape), cfg.hidden_sizes, out)
        else:
            raise ValueError(f"architecture must be mlp or conv, got {cfg.architecture!r}")
        self.likelihood = Likelihood.EXACT if self.num_dims <= 2 else Likelihood.NONE
        if cfg.objective == "cd":  # persistent chains: model state, saved with the weights
            self.register_buffer("replay", self._uniform((cfg.replay_size, *self.event_shape)))

    # -- energies ---------------------------------------------------------------------------

    def _energy(self, x: Tensor, c: Tensor | None) -> Tensor:
        out = self.net(x)  # (B, K)
        if c is None:
            return out[:, 0]  # (B,)
        return out.gather(1, c[:, None]).squeeze(1)  # (B,)

    def energy(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """E(x) or E(x, c), shape (batch,): −log p(x) up to the constant log Z."""
        x = self.check_x(x)
        return self._energy(x, self.check_c(c, len(x)))

    def log_normalizer(self) -> Tensor:
        """log Z = log ∫ exp(−E(x, k)) dx for each class k, shape (max(1, K),), by the
        midpoint rule on ``quadrature_points``^D cells over ``quadrature_range``^D (D <= 2)."""
        if self.likelihood is Likelihood.NONE:
            raise NotImplementedError(self._no_likelihood())
        low, high = self.config.quadrature_range
        m, d = self.config.quadrature_points, self.num_dims
        h = (high - low) / m
        axis = low + h * (torch.arange(m, device=self.device, dtype=self.dtype) + 0.5)  # (m,)
        grid = torch.cartesian_prod(axis, axis) if d == 2 else axis[:, None]  # (m^D, D)
        grid = grid.reshape(-1, *self.event_shape)  # (m^D, *event_shape)
        neg = torch.cat([-self.net(g) for g in grid.split(QUADRATURE_CHUNK)])  # (m^D, K)
        return neg.logsumexp(0) + d * math.log(h)  # (K,)

    def _no_likelihood(self) -> str:
        return (
            f"{type(self).__name__} has no likelihood for event shape "
            f"{tuple(self.event_shape)} (likelihood = none): its normaliser is computed by "
            "quadrature only for 1 or 2 dimensions; use energy(x) for the unnormalised E(x)"
        )

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x) = −E(x) − log Z in nats, (batch,), with Z by quadrature (D <= 2)."""
        if self.likelihood is Likelihood.NONE:
            raise NotImplementedError(self._no_likelihood())
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        log_z = self.log_normalizer()  # (K,)
        return -self._energy(x, c) - (log_z[0] if c is None else log_z[c])

    # -- training ---------------------------------------------------------------------------

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        self._check_phase(phase)
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        if self.config.objective == "dsm":
            return self._dsm_loss(x, c)
        return self._cd_loss(x, c)

    def _cd_loss(self, x: Tensor, c: Tensor | None) -> Loss:
        n, size = len(x), self.config.replay_size
        if n > size:
            raise ValueError(
                f"a batch of {n} needs at least as many replay chains: set replay_size >= {n} "
                f"(it is {size}) or lower --batch-size"
            )
        index = torch.randperm(size, device=self.device)[:n]  # distinct chains
        restart = torch.rand(n, device=self.device) < self.config.restart_prob  # (n,)
        start = torch.where(
            restart.view(n, *[1] * len(self.event_shape)),
            self._uniform((n, *self.event_shape)),
            self.replay[index],
        )
        neg = self.sampler().run(lambda z: self._energy(z, c), start)  # (n, *event_shape)
        if self.training:  # validation reads the buffer but leaves it as it was
            with torch.no_grad():
                self.replay[index] = neg
        e_pos, e_neg = self._energy(x, c), self._energy(neg, c)  # (n,) each
        cd = e_pos.mean() - e_neg.mean()
        reg = self.config.energy_reg * (e_pos**2 + e_neg**2).mean()
        metrics = {
            "cd": cd.detach(),
            "energy_data": e_pos.mean().detach(),
            "energy_sample": e_neg.mean().detach(),
        }
        return Loss(cd + reg, metrics)

    def _dsm_loss(self, x: Tensor, c: Tensor | None) -> Loss:
        sigma = self.config.dsm_sigma
        keep_graph = torch.is_grad_enabled()  # validation under no_grad needs no 2nd order
        eps = torch.randn_like(x)
        with torch.enable_grad():
            noisy = (x + sigma * eps).requires_grad_(True)
            energy = self._energy(noisy, c)
            (grad,) = torch.autograd.grad(energy.sum(), noisy, create_graph=keep_graph)
        score = -grad  # s(x̃) = ∇ log p(x̃)
        value = 0.5 * (sigma * score + eps).flatten(1).pow(2).sum(-1).mean()
        if not keep_graph:
            value = value.detach()
        return Loss(value, {"dsm": value.detach()})

    # -- sampling ---------------------------------------------------------------------------

    def sampler(
        self, steps: int | None = None, step_size: float | None = None, noise: float | None = None
    ) -> SGLD:
        """The SGLD sampler of this model: the training's settings, or those given."""
        cfg = self.config
        return SGLD(
            step_size=cfg.sgld_step_size if step_size is None else step_size,
            steps=cfg.sgld_steps if steps is None else steps,
            noise=cfg.sgld_noise if noise is None else noise,
            clamp=tuple(cfg.init_range) if cfg.clamp else None,
        )

    def _uniform(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        low, high = self.config.init_range
        u = torch.rand(shape, generator=generator, device=self.device, dtype=self.dtype)
        return low + (high - low) * u

    def sample(
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Tensor:
        opts: EBMSampleOptions = self.sample_settings(options)
        c = self.check_c(c, n)
        if opts.init == "replay":
            if not hasattr(self, "replay"):
                raise ValueError("init='replay' needs a model trained with objective='cd'")
            index = torch.randint(len(self.replay), (n,), generator=generator, device=self.device)
            start = self.replay[index]  # (n, *event_shape)
        else:
            start = self._uniform((n, *self.event_shape), generator)
        sgld = self.sampler(opts.steps, opts.step_size, opts.noise)
        return sgld.run(lambda z: self._energy(z, c), start, generator)

    def complete(
        self,
        x: Tensor,
        observed_mask: Tensor,
        c: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Fill the dimensions where ``observed_mask`` is False by SGLD on them alone (the
        default sampling options), starting from uniform noise on ``init_range``; the
        observed dimensions come back unchanged."""
        mask = torch.as_tensor(observed_mask, dtype=torch.bool, device=x.device).expand_as(x)
        x = self.check_x(torch.where(mask, x, torch.zeros((), dtype=x.dtype)))
        c = self.check_c(c, len(x))
        if bool(mask.all()):
            return x
        start = torch.where(mask, x, self._uniform(tuple(x.shape), generator))
        opts = EBMSampleOptions()
        sgld = self.sampler(opts.steps, opts.step_size, opts.noise)
        out = sgld.run(lambda z: self._energy(z, c), start, generator, movable=~mask)
        return torch.where(mask, x, out)
