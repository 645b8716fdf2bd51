"""Generative adversarial networks: one model, pluggable objectives and architectures.

A generator x = G(z, c), z ~ N(0, I), is trained against a discriminator D(x, c) in the
game named by ``objective`` (``dgm.models.adversarial.objectives``): the trainer calls the
``"discriminator"`` phase ``n_critic`` times, then the ``"generator"`` phase, each on the
next batch and each with its own optimiser (per-phase learning rates and Adam betas from
``param_groups``). A GAN defines samples, not a density: ``likelihood`` is NONE and
``log_prob`` raises; measure it with ``dgm eval DIR --sample-quality``.

Outputs: ``real`` (identity: vectors, 2-D toys), ``unit`` (a sigmoid into [0, 1]: grey
images, dgm's default image scale) and ``binary`` (binarized images: the generator gives
pixel probabilities; training shows the discriminator Bernoulli draws with a
straight-through gradient, ``sample`` draws Bernoulli pixels, or thresholds them at ½
with ``threshold``). ``auto`` is ``unit`` for images (C, H, W) and ``real`` otherwise.

The trainer's EMA (``--ema-decay``) averages every weight; ``dgm.load`` and ``dgm
sample`` load the averaged weights by default, so samples come from the EMA generator.

References:
    Goodfellow et al. 2014, Generative Adversarial Nets, arXiv:1406.2661.
    Radford, Metz & Chintala 2015, DCGAN, arXiv:1511.06434.
    Miyato & Koyama 2018, cGANs with Projection Discriminator, arXiv:1802.05637.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import constraints

from dgm.model import ClassConditional, ContextConditional, GenerativeModel, Likelihood, Loss
from dgm.models.adversarial.nets import (
    ConvGenerator,
    MLPGenerator,
    ProjectionDiscriminator,
    conv_features,
    conv_fits,
    mlp_features,
)
from dgm.models.adversarial.objectives import OBJECTIVES, make_objective
from dgm.registry import register

ObjectiveName = Literal[
    "minimax",
    "nonsaturating",
    "kl",
    "wgan",
    "wgan_gp",
    "hinge",
    "f_kl",
    "f_reverse_kl",
    "f_js",
    "f_pearson",
    "f_squared_hellinger",
    "f_total_variation",
]


Output = Literal["auto", "real", "unit", "binary"]


class NoLikelihoodError(NotImplementedError, ValueError):
    """A model without a likelihood was asked for one (a ValueError to the CLI)."""


@dataclasses.dataclass
class GANConfig(ContextConditional, ClassConditional):
    objective: ObjectiveName = "nonsaturating"  # the game (Goodfellow 2014's practical choice)
    latent_dim: int = 64  # dimensions of z ~ N(0, I)
    architecture: Literal["auto", "mlp", "conv"] = "auto"  # auto: conv for images H, W = 4k
    hidden_sizes: tuple[int, ...] = (256, 256)  # MLP widths of G (D uses them reversed)
    conv_channels: int = 64  # conv: feature maps of D's first layer, G's last (DCGAN: 64)
    spectral_norm: bool = False  # spectral normalisation of D's layers (Miyato et al. 2018)
    n_critic: int = 1  # discriminator phases per generator phase (WGAN: 5)
    lr_generator: float | None = None  # the generator's learning rate; none: --lr
    lr_discriminator: float | None = None  # the discriminator's learning rate; none: --lr
    betas_generator: tuple[float, ...] = (0.5, 0.999)  # G's Adam β1,β2 (DCGAN's 0.5)
    betas_discriminator: tuple[float, ...] = (0.5, 0.999)  # D's Adam β1,β2 (DCGAN's 0.5)
    clip: float = 0.01  # wgan: critic weights clipped to [-clip, clip] (Arjovsky 2017)
    gp_weight: float = 10.0  # wgan_gp: weight λ of the gradient penalty (Gulrajani 2017)
    output: Output = "auto"  # x's support: real, unit [0,1], binary {0,1}; auto: unit for images
    reuse_fakes: bool = False  # G's phase scores D's last fakes (examples/dcgan): one G pass fewer


@dataclasses.dataclass
class GANSampleOptions:
    temperature: float = 1.0  # scale of z: < 1 trades diversity for typical samples
    threshold: bool = False  # binary output: pixels p > ½ instead of Bernoulli draws


def _check_config(config: GANConfig) -> None:
    if config.objective not in OBJECTIVES:
        raise ValueError(
            f"unknown objective {config.objective!r}; choose one of {', '.join(OBJECTIVES)}"
        )
    if config.latent_dim <= 0 or config.conv_channels <= 0:
        raise ValueError("latent_dim and conv_channels must be positive")
    if config.n_critic < 1:
        raise ValueError(f"n_critic must be >= 1, got {config.n_critic}")
    for name in ("lr_generator", "lr_discriminator"):
        lr = getattr(config, name)
        if lr is not None and not lr > 0:
            raise ValueError(f"{name} must be positive (or none for --lr), got {lr}")
    for name in ("betas_generator", "betas_discriminator"):
        betas = tuple(getattr(config, name))
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"{name} must be two numbers in [0, 1), e.g. 0.5,0.999; got {betas}")
    if not config.clip > 0 or config.gp_weight < 0:
        raise ValueError(
            f"clip must be > 0 and gp_weight >= 0, got {config.clip}, {config.gp_weight}"
        )


@register("gan", GANConfig)
class GAN(GenerativeModel):
    """Generative adversarial network with pluggable objective (Goodfellow et al. 2014).

    Objectives: minimax, nonsaturating, kl, wgan (clipping), wgan_gp, hinge, and the f-GANs
    f_kl, f_reverse_kl, f_js, f_pearson, f_squared_hellinger, f_total_variation. MLP or
    DCGAN networks, optional spectral norm, projection discriminator when conditional.

    References:
        Goodfellow et al. 2014, arXiv:1406.2661; Nowozin et al. 2016, arXiv:1606.00709;
        Arjovsky et al. 2017, arXiv:1701.07875; Gulrajani et al. 2017, arXiv:1704.00028;
        Miyato & Koyama 2018, arXiv:1802.05637.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("gan", (2,), objective="hinge", hidden_sizes=(16,), n_critic=2)
        >>> model.phases
        ('discriminator', 'discriminator', 'generator')
        >>> model.sample(3, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 2])
        >>> sorted(model.loss(torch.randn(5, 2), phase="discriminator").metrics)
        ['divergence', 'fake', 'real']
    """

    likelihood = Likelihood.NONE
    sample_options = GANSampleOptions

    def __init__(self, event_shape: Iterable[int], config: GANConfig) -> None:
        super().__init__(event_shape, config)
        _check_config(config)
        cond = self.conditioning
        if cond.context_vocab:
            raise ValueError("gan conditions on class labels or a float context, not tokens")
        shape = tuple(self.event_shape)
        self.output = config.output
        if self.output == "auto":
            self.output = "unit" if len(shape) == 3 else "real"
        self.support = {
            "real": constraints.real,
            "unit": constraints.unit_interval,
            "binary": constraints.boolean,
        }[self.output]
        self.phases = ("discriminator",) * config.n_critic + ("generator",)
        self.objective = make_objective(config)
        arch = config.architecture
        if arch == "auto":
            arch = "conv" if conv_fits(shape) else "mlp"
        if arch == "conv" and not conv_fits(shape):
            raise ValueError(
                f"architecture conv needs images (C, H, W) with H and W multiples of 4, got "
                f"{shape}: use --architecture mlp"
            )
        self.cond_width = cond.num_classes or math.prod(cond.context_shape or (0,))
        g_in = config.latent_dim + self.cond_width  # z and the one-hot label or the context
        if arch == "conv":
            ch = config.conv_channels
            self.generator: nn.Module = ConvGenerator(g_in, self.event_shape, ch)
            features, width = (
                conv_features(shape[0], ch),
                2 * ch * (shape[1] // 4) * (shape[2] // 4),
            )
        else:
            sizes = tuple(config.hidden_sizes)
            if not sizes:
                raise ValueError("hidden_sizes must name at least one width, e.g. 256,256")
            self.generator = MLPGenerator(g_in, sizes, self.event_shape)
            features, width = mlp_features(self.num_dims, sizes[::-1]), sizes[0]
        self.discriminator = ProjectionDiscriminator(features, width, cond, config.spectral_norm)
        # reuse_fakes: the last discriminator phase's fakes (with the generator's graph) and
        # their condition, until the generator phase takes them; never saved (a step ends
        # with its generator phase, so a checkpoint never falls between the two)
        self._fakes: tuple[Tensor, Tensor | None] | None = None

    def support_hint(self) -> str:
        if self.output == "unit":
            return "give images scaled to [0, 1] (--scale unit) or model any real x (--output real)"
        if self.output == "binary":
            return "binarize the data (--binarize static) or model grey levels (--output unit)"
        return ""

    # -- the two networks -----------------------------------------------------------------

    def _condition(self, c: Tensor | None, n: int) -> Tensor | None:
        """The generator's condition input (n, cond_width): one-hot label or flat context."""
        if c is None:
            return None
        if self.conditioning.kind == "classes":
            return F.one_hot(c, self.num_classes).to(self.dtype)  # (n, K)
        return c.reshape(n, -1)  # (n, prod(context_shape))

    def _probabilities(
        self,
        n: int,
        c: Tensor | None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """G(z, c) through the output activation, (n, *event_shape)."""
        z = torch.randn(
            n, self.config.latent_dim, generator=generator, device=self.device, dtype=self.dtype
        )
        z = temperature * z
        h = self._condition(c, n)
        raw = self.generator(z if h is None else torch.cat([z, h], dim=1))  # (n, *event_shape)
        return raw if self.output == "real" else torch.sigmoid(raw)

    def _fake(self, n: int, c: Tensor | None) -> Tensor:
        """Fake x for training: binary outputs are Bernoulli draws whose gradient passes
        straight through to the probabilities (Bengio et al. 2013)."""
        x = self._probabilities(n, c)
        if self.output != "binary":
            return x
        hard = torch.bernoulli(x.detach())
        return hard + (x - x.detach())  # exactly the draws, gradient of x

    # -- the contract -----------------------------------------------------------------------

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        """The loss of one phase: the discriminator's (with the objective's penalty) on a
        batch of real x and as many fakes, or the generator's on fakes for the batch's c."""
        self._check_phase(phase)
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        self.objective.prepare(self.discriminator)
        step = {"discriminator": self._discriminator_loss, "generator": self._generator_loss}
        return step[phase](x, c)

    def _discriminator_loss(self, x: Tensor, c: Tensor | None) -> Loss:
        keep = self.config.reuse_fakes and torch.is_grad_enabled()
        with torch.set_grad_enabled(keep):  # the generator's graph only when it is reused
            generated = self._fake(len(x), c)
        self._fakes = (generated, c) if keep else None
        fake = generated.detach()
        real_v, fake_v = self.discriminator(x, c), self.discriminator(fake, c)
        value = self.objective.discriminator_loss(real_v, fake_v)
        metrics = {
            "real": real_v.mean().detach(),
            "fake": fake_v.mean().detach(),
            "divergence": self.objective.divergence(value).detach(),
        }
        penalty = self.objective.penalty(lambda t: self.discriminator(t, c), x, fake)
        if penalty is not None:
            value = value + penalty
            metrics["penalty"] = penalty.detach()
        return Loss(value, metrics)

    def _generator_loss(self, x: Tensor, c: Tensor | None) -> Loss:
        """On fresh fakes for the batch's c, or with ``reuse_fakes`` on the fakes (and their
        c) of the discriminator phase just before, scored by the updated discriminator; a
        generator phase with no discriminator phase before it draws fresh ones."""
        reused, self._fakes = self._fakes, None
        fake, c = reused if reused is not None else (self._fake(len(x), c), c)
        fake_v = self.discriminator(fake, c)
        return Loss(self.objective.generator_loss(fake_v), {"fake": fake_v.mean().detach()})

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """A GAN has no likelihood: raises (a NotImplementedError and a ValueError)."""
        raise NoLikelihoodError(
            "gan has no likelihood (likelihood = none): a GAN defines samples, not a "
            "density; measure it with `dgm eval DIR --sample-quality`"
        )

    def sample(
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Tensor:
        """n draws G(z, c), z ~ N(0, temperature² I), shape (n, *event_shape), in the support."""
        opts = self.sample_settings(options)
        c = self.check_c(c, n)
        with torch.no_grad():
            x = self._probabilities(n, c, opts.temperature, generator)
        if self.output != "binary":
            return x
        if opts.threshold:
            return (x > 0.5).to(x.dtype)
        return torch.bernoulli(x, generator=generator)

    def param_groups(self) -> dict[str, list[dict[str, Any]]]:
        """One optimiser each for the discriminator and the generator, with the config's
        learning rates (none: the trainer's) and Adam betas."""
        cfg = self.config
        groups = {}
        for phase, module, lr, betas in (
            ("discriminator", self.discriminator, cfg.lr_discriminator, cfg.betas_discriminator),
            ("generator", self.generator, cfg.lr_generator, cfg.betas_generator),
        ):
            group: dict[str, Any] = {"params": list(module.parameters()), "betas": tuple(betas)}
            if lr is not None:
                group["lr"] = lr
            groups[phase] = [group]
        return groups
