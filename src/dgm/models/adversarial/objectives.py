"""The games a GAN can play: one small object per objective.

Every objective reads the discriminator's raw output v (a logit, a critic value or an
f-GAN's V) and gives the two losses of the game, each an expectation written as a mean:
``discriminator_loss(real, fake)`` and ``generator_loss(fake)``. Optional ``weights``
(non-negative, summing to 1 over the batch) turn a mean into an exact expectation over a
discrete distribution or a quadrature rule, which the theory tests use. Two hooks cover
what is not a function of v alone: ``prepare(critic)`` runs before the critic is used
(WGAN clips its weights) and ``penalty(critic, real, fake)`` adds to the discriminator
loss (WGAN-GP's gradient penalty). ``divergence`` turns a discriminator loss into the
estimate of the divergence that the game minimises (nats, or critic units for WGANs).

The f-GAN objectives also carry f, f′, the output activation g_f and the convex
conjugate f*, so the variational bound D_f(P ‖ Q) ≥ E_P[T] − E_Q[f*(T)], with equality at
T* = f′(p/q), can be checked against closed forms.

References:
    Goodfellow et al. 2014, Generative Adversarial Nets, arXiv:1406.2661.
    Nowozin, Cseke & Tomioka 2016, f-GAN, arXiv:1606.00709.
    Arjovsky, Chintala & Bottou 2017, Wasserstein GAN, arXiv:1701.07875.
    Gulrajani et al. 2017, Improved Training of Wasserstein GANs, arXiv:1704.00028.
    Lim & Ye 2017, Geometric GAN, arXiv:1705.02894 (hinge loss).
    Poole et al. 2016, Improved generator objectives for GANs, arXiv:1612.02780 (the KL
    generator loss).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG2 = math.log(2.0)
LOG4 = math.log(4.0)


def expectation(values: Tensor, weights: Tensor | None = None) -> Tensor:
    """The mean of ``values`` (batch,), or Σ weights·values when weights are given."""
    if weights is None:
        return values.mean()
    if weights.shape != values.shape:
        raise ValueError(
            f"weights have shape {tuple(weights.shape)}, expected {tuple(values.shape)} "
            "(one weight per example)"
        )
    return (weights * values).sum()


class Objective:
    """Base of every objective: the losses are expectations of per-example terms,
    E_p[real_term(v)] + E_q[fake_term(v)] for the discriminator and E_q[generator_term(v)]
    for the generator."""

    name = ""

    @classmethod
    def from_config(cls, config: Any) -> Objective:
        """The objective built from a ``GANConfig`` (most take nothing from it)."""
        return cls()

    def real_term(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def fake_term(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def generator_term(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def discriminator_loss(
        self,
        real: Tensor,
        fake: Tensor,
        real_weights: Tensor | None = None,
        fake_weights: Tensor | None = None,
    ) -> Tensor:
        """The discriminator's loss, a scalar, from its outputs on real and fake x."""
        return expectation(self.real_term(real), real_weights) + expectation(
            self.fake_term(fake), fake_weights
        )

    def generator_loss(self, fake: Tensor, weights: Tensor | None = None) -> Tensor:
        """The generator's loss, a scalar, from the discriminator's outputs on fake x."""
        return expectation(self.generator_term(fake), weights)

    def divergence(self, discriminator_loss: Tensor) -> Tensor:
        """The divergence estimate a discriminator loss gives (exact at the optimum)."""
        return -discriminator_loss

    def prepare(self, critic: nn.Module) -> None:
        """Called before the critic is used in a training phase. Default: nothing."""

    def penalty(
        self, critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor
    ) -> Tensor | None:
        """A term added to the discriminator loss. Default: none."""
        return None


# -- the original game and its generator losses --------------------------------------------


class Minimax(Objective):
    """D = σ(v). The discriminator maximises V(G, D) = E_p log D + E_q log(1 − D), its
    loss is −V; the generator minimises E_q log(1 − D(G(z))) (Goodfellow et al. 2014).
    At D* = p/(p+q), V = 2·JSD(p ‖ q) − log 4."""

    name = "minimax"

    def real_term(self, v: Tensor) -> Tensor:
        return F.softplus(-v)  # −log σ(v)

    def fake_term(self, v: Tensor) -> Tensor:
        return F.softplus(v)  # −log(1 − σ(v))

    def generator_term(self, v: Tensor) -> Tensor:
        return -F.softplus(v)  # log(1 − σ(v)): flat where D(G(z)) → 0

    def divergence(self, discriminator_loss: Tensor) -> Tensor:
        """JSD(p ‖ q) ≥ (log 4 − loss) / 2, equality at D*."""
        return (LOG4 - discriminator_loss) / 2


class NonSaturating(Minimax):
    """The minimax discriminator; the generator minimises −E_q log D(G(z)), whose gradient
    stays large where the discriminator rejects the samples (Goodfellow et al. 2014)."""

    name = "nonsaturating"

    def generator_term(self, v: Tensor) -> Tensor:
        return F.softplus(-v)  # −log σ(v)


class KLGenerator(Minimax):
    """The minimax discriminator; the generator minimises E_q log((1 − D)/D) = −E_q[v].
    At D* = p/(p+q), v* = log p/q and the loss is KL(q ‖ p), the reverse KL from the model
    to the data (Poole et al. 2016; CS236 notes)."""

    name = "kl"

    def generator_term(self, v: Tensor) -> Tensor:
        return -v


# -- Wasserstein and hinge ----------------------------------------------------------------


class WGAN(Objective):
    """A critic f maximises E_p f − E_q f over 1-Lipschitz f (here: weights clipped to
    [−clip, clip] before each use), estimating the Wasserstein-1 distance up to the
    Lipschitz constant; the generator minimises −E_q f (Arjovsky et al. 2017)."""

    name = "wgan"

    def __init__(self, clip: float | None = 0.01) -> None:
        if clip is not None and not clip > 0:
            raise ValueError(f"clip must be positive, got {clip}")
        self.clip = clip

    @classmethod
    def from_config(cls, config: Any) -> Objective:
        return cls(config.clip)

    def real_term(self, v: Tensor) -> Tensor:
        return -v

    def fake_term(self, v: Tensor) -> Tensor:
        return v

    def generator_term(self, v: Tensor) -> Tensor:
        return -v

    @torch.no_grad()
    def prepare(self, critic: nn.Module) -> None:
        """Clip every critic weight into [−clip, clip] (the clip after each update, done
        before the next use, since the trainer owns the optimiser step)."""
        if self.clip is None:
            return
        for p in critic.parameters():
            p.clamp_(-self.clip, self.clip)


class WGANGP(WGAN):
    """WGAN with a gradient penalty instead of clipping: λ E[(‖∇f(x̂)‖ − 1)²] at x̂ on
    straight lines between real and fake pairs (Gulrajani et al. 2017)."""

    name = "wgan_gp"

    def __init__(self, weight: float = 10.0) -> None:
        super().__init__(clip=None)
        if weight < 0:
            raise ValueError(f"gp_weight must be >= 0, got {weight}")
        self.weight = weight

    @classmethod
    def from_config(cls, config: Any) -> Objective:
        return cls(config.gp_weight)

    def penalty(
        self, critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor
    ) -> Tensor | None:
        norms = gradient_norms(critic, real, fake)
        return self.weight * ((norms - 1) ** 2).mean()


def gradient_norms(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """‖∇_x f(x̂)‖ (batch,) at x̂ = ε real + (1 − ε) fake, ε ~ U[0, 1] per example, with a
    graph for the penalty's own gradient (also under ``torch.no_grad``: validation)."""
    shape = (len(real),) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, device=real.device, dtype=real.dtype)
    with torch.enable_grad():
        between = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
        out = critic(between)
        (grad,) = torch.autograd.grad(out.sum(), between, create_graph=True)
    return grad.flatten(1).norm(dim=1)


class Hinge(Objective):
    """Hinge loss: the discriminator minimises E_p max(0, 1 − v) + E_q max(0, 1 + v), the
    generator −E_q v (Lim & Ye 2017; Miyato et al. 2018). The optimal loss is 2 − 2·TV."""

    name = "hinge"

    def real_term(self, v: Tensor) -> Tensor:
        return F.relu(1 - v)

    def fake_term(self, v: Tensor) -> Tensor:
        return F.relu(1 + v)

    def generator_term(self, v: Tensor) -> Tensor:
        return -v

    def divergence(self, discriminator_loss: Tensor) -> Tensor:
        """TV(p, q) ≥ (2 − loss) / 2, equality at the optimum."""
        return (2 - discriminator_loss) / 2


# -- f-GAN ------------------------------------------------------------------------------------


class FGAN(Objective):
    """Variational divergence minimisation (Nowozin et al. 2016): with T = g_f(v),
    D_f(p ‖ q) = E_q f(p/q) ≥ E_p[T] − E_q[f*(T)], equality at T* = f′(p/q). The
    discriminator maximises the bound, the generator minimises it (its only term in the
    generator is −E_q f*(T)). ``fake_term(v)`` = f*(g_f(v)) is written in closed form per
    divergence, stable for any v."""

    def f(self, u: Tensor) -> Tensor:
        """The convex generator f with f(1) = 0."""
        raise NotImplementedError

    def f_prime(self, u: Tensor) -> Tensor:
        """f′(u): the optimal critic is T* = f′(p/q)."""
        raise NotImplementedError

    def activation(self, v: Tensor) -> Tensor:
        """g_f: maps the discriminator's v into the domain of f*."""
        raise NotImplementedError

    def conjugate(self, t: Tensor) -> Tensor:
        """f*(t) = sup_u (u t − f(u))."""
        raise NotImplementedError

    def real_term(self, v: Tensor) -> Tensor:
        return -self.activation(v)

    def generator_term(self, v: Tensor) -> Tensor:
        return -self.fake_term(v)

    def bound(
        self,
        t_real: Tensor,
        t_fake: Tensor,
        real_weights: Tensor | None = None,
        fake_weights: Tensor | None = None,
    ) -> Tensor:
        """E_p[T] − E_q[f*(T)] for critic values T given directly (not through g_f)."""
        return expectation(t_real, real_weights) - expectation(self.conjugate(t_fake), fake_weights)


class FKL(FGAN):
    """KL(p ‖ q): f(u) = u log u, g_f(v) = v, f*(t) = exp(t − 1)."""

    name = "f_kl"

    def f(self, u: Tensor) -> Tensor:
        return torch.xlogy(u, u)

    def f_prime(self, u: Tensor) -> Tensor:
        return 1 + u.log()

    def activation(self, v: Tensor) -> Tensor:
        return v

    def conjugate(self, t: Tensor) -> Tensor:
        return torch.exp(t - 1)

    def fake_term(self, v: Tensor) -> Tensor:
        return torch.exp(v - 1)


class FReverseKL(FGAN):
    """KL(q ‖ p): f(u) = −log u, g_f(v) = −exp(−v), f*(t) = −1 − log(−t)."""

    name = "f_reverse_kl"

    def f(self, u: Tensor) -> Tensor:
        return -u.log()

    def f_prime(self, u: Tensor) -> Tensor:
        return -1 / u

    def activation(self, v: Tensor) -> Tensor:
        return -torch.exp(-v)

    def conjugate(self, t: Tensor) -> Tensor:
        return -1 - torch.log(-t)

    def fake_term(self, v: Tensor) -> Tensor:
        return v - 1


class FJS(FGAN):
    """2·JSD(p ‖ q) = KL(p ‖ m) + KL(q ‖ m), m = (p + q)/2:
    f(u) = u log u − (u + 1) log((u + 1)/2), g_f(v) = log 2 − log(1 + e^−v),
    f*(t) = −log(2 − e^t). The GAN discriminator loss shifted by log 4."""

    name = "f_js"

    def f(self, u: Tensor) -> Tensor:
        return torch.xlogy(u, u) - (u + 1) * torch.log((u + 1) / 2)

    def f_prime(self, u: Tensor) -> Tensor:
        return torch.log(2 * u / (1 + u))

    def activation(self, v: Tensor) -> Tensor:
        return LOG2 - F.softplus(-v)

    def conjugate(self, t: Tensor) -> Tensor:
        return -torch.log(2 - torch.exp(t))

    def fake_term(self, v: Tensor) -> Tensor:
        return F.softplus(v) - LOG2  # −log(2 − 2σ(v)) = −log 2 − log σ(−v)


class FPearson(FGAN):
    """Pearson χ²(p ‖ q) = Σ (p − q)²/q: f(u) = (u − 1)², g_f(v) = v, f*(t) = t²/4 + t."""

    name = "f_pearson"

    def f(self, u: Tensor) -> Tensor:
        return (u - 1) ** 2

    def f_prime(self, u: Tensor) -> Tensor:
        return 2 * (u - 1)

    def activation(self, v: Tensor) -> Tensor:
        return v

    def conjugate(self, t: Tensor) -> Tensor:
        return t**2 / 4 + t

    def fake_term(self, v: Tensor) -> Tensor:
        return v**2 / 4 + v


class FSquaredHellinger(FGAN):
    """Squared Hellinger Σ (√p − √q)²: f(u) = (√u − 1)², g_f(v) = 1 − e^−v,
    f*(t) = t/(1 − t)."""

    name = "f_squared_hellinger"

    def f(self, u: Tensor) -> Tensor:
        return (u.sqrt() - 1) ** 2

    def f_prime(self, u: Tensor) -> Tensor:
        return 1 - 1 / u.sqrt()

    def activation(self, v: Tensor) -> Tensor:
        return 1 - torch.exp(-v)

    def conjugate(self, t: Tensor) -> Tensor:
        return t / (1 - t)

    def fake_term(self, v: Tensor) -> Tensor:
        return torch.expm1(v)  # (1 − e^−v)/e^−v


class FTotalVariation(FGAN):
    """Total variation ½ Σ |p − q|: f(u) = ½|u − 1|, g_f(v) = ½ tanh(v), f*(t) = t on
    |t| ≤ ½; T* = ½ sign(p − q)."""

    name = "f_total_variation"

    def f(self, u: Tensor) -> Tensor:
        return (u - 1).abs() / 2

    def f_prime(self, u: Tensor) -> Tensor:
        return torch.sign(u - 1) / 2

    def activation(self, v: Tensor) -> Tensor:
        return torch.tanh(v) / 2

    def conjugate(self, t: Tensor) -> Tensor:
        if bool((t.abs() > 0.5).any()):
            raise ValueError("the conjugate of total variation is finite only on |t| <= 1/2")
        return t

    def fake_term(self, v: Tensor) -> Tensor:
        return torch.tanh(v) / 2


OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls
    for cls in (
        Minimax,
        NonSaturating,
        KLGenerator,
        WGAN,
        WGANGP,
        Hinge,
        FKL,
        FReverseKL,
        FJS,
        FPearson,
        FSquaredHellinger,
        FTotalVariation,
    )
}


def make_objective(config: Any) -> Objective:
    """The objective named by ``config.objective``, built from the config.

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> obj = make_objective(SimpleNamespace(objective="minimax"))
        >>> round(float(obj.discriminator_loss(torch.zeros(3), torch.zeros(3))), 4)  # log 4
        1.3863
    """
    try:
        cls = OBJECTIVES[config.objective]
    except KeyError:
        raise ValueError(
            f"unknown objective {config.objective!r}; choose one of {', '.join(OBJECTIVES)}"
        ) from None
    return cls.from_config(config)
