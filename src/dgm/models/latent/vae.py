"""Variational autoencoder, with the β-VAE, IWAE and conditional (CVAE) variants.

p(x | c) = ∫ p(x | z, c) p(z) dz with p(z) = N(0, I), fitted by maximising the evidence lower
bound (ELBO) with an amortised Gaussian posterior q(z | x, c) and reparameterised samples.

References:
    Kingma & Welling 2013, Auto-Encoding Variational Bayes, arXiv:1312.6114.
    Higgins et al. 2017, β-VAE: Learning Basic Visual Concepts with a Constrained
    Variational Framework, ICLR.
    Burda, Grosse & Salakhutdinov 2015, Importance Weighted Autoencoders, arXiv:1509.00519.
    Sohn, Lee & Yan 2015, Learning Structured Output Representation using Deep Conditional
    Generative Models, NeurIPS.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from dgm.model import GenerativeModel, Likelihood, Loss
from dgm.models.latent.decoders import make_head
from dgm.nn import ConvDecoder, ConvEncoder, mlp
from dgm.registry import register

IW_MAX_ELEMENTS = 2**22  # decoder outputs per chunk of log_prob_iw (16 MiB in float32)
LOG_STD_MIN, LOG_STD_MAX = -10.0, 3.0  # clamp on the encoder's log σ: σ in [4.5e-5, 20]


@dataclasses.dataclass
class VAEConfig:
    latent_dim: int = 10  # the CS236 default: enough for MNIST-scale images, cheap to inspect
    hidden_sizes: tuple[int, ...] = (300, 300)  # CS236's two layers of 300; () = affine maps
    architecture: Literal["mlp", "conv"] = "mlp"  # an MLP needs no assumption on event_shape
    conv_channels: int = 32  # enough for 28x28 grey images, still fast on a CPU
    decoder: Literal["bernoulli", "gaussian", "categorical"] = "bernoulli"  # binarised MNIST
    decoder_std: float | None = None  # gaussian only; None learns σ(z), a number fixes σ
    beta: float = 1.0  # 1 is the true ELBO; β > 1 trades likelihood for disentanglement
    kl_warmup_steps: int = 0  # 0: no annealing; the paper's default objective
    iw_samples: int = 1  # 1 trains the ELBO; k > 1 the tighter IWAE_k bound (Burda et al.)
    num_classes: int = 0  # 0: unconditional; > 0 models p(x | c) (CVAE, Sohn et al.)


@register("vae", VAEConfig)
class VAE(GenerativeModel):
    """Variational autoencoder (Kingma & Welling 2013): log_prob is the ELBO in nats.

    The encoder gives q(z | x, c) = N(μ, diag σ²) from one network whose output is split into
    (μ, log σ); the decoder gives p(x | z, c), a Bernoulli, Gaussian or 256-way categorical
    per dimension (``decoder``). ``beta`` weights the KL term (β-VAE, Higgins et al. 2017),
    optionally ramped up from 0 over ``kl_warmup_steps`` training updates; ``iw_samples`` = k
    > 1 trains the importance-weighted bound IWAE_k (Burda et al. 2015, arXiv:1509.00519);
    ``num_classes`` > 0 feeds a one-hot label to both networks (CVAE, Sohn et al. 2015).

    References:
        Kingma & Welling 2013, arXiv:1312.6114; Higgins et al. 2017 (β-VAE, ICLR);
        Burda et al. 2015, arXiv:1509.00519; Sohn et al. 2015 (CVAE, NeurIPS).

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("vae", (1, 8, 8), latent_dim=2, hidden_sizes=(32,))
        >>> x = model.sample(4, generator=torch.Generator().manual_seed(0))
        >>> x.shape, model.log_prob(x).shape, model.log_prob_iw(x, k=10).shape
        (torch.Size([4, 1, 8, 8]), torch.Size([4]), torch.Size([4]))
        >>> sorted(model.loss(x).metrics)
        ['beta', 'kl', 'nelbo', 'reconstruction']
    """

    likelihood = Likelihood.LOWER_BOUND

    def __init__(self, event_shape: Iterable[int], config: VAEConfig) -> None:
        super().__init__(event_shape, config)
        _check_config(config)
        self.head = make_head(config.decoder, self.event_shape, config.decoder_std)
        self.support = self.head.support
        L, K, m = config.latent_dim, self.num_classes, self.head.num_params
        reverse = tuple(reversed(config.hidden_sizes))
        if config.architecture == "mlp":
            self.encoder = mlp(self.num_dims + K, config.hidden_sizes, 2 * L)
            self.decoder = mlp(L + K, reverse, m * self.num_dims)
        else:
            ch = config.conv_channels
            self.encoder = ConvEncoder(self.event_shape, 2 * L, ch, config.hidden_sizes, K)
            c, h, w = self.event_shape
            self.decoder = ConvDecoder(L + K, (m * c, h, w), ch, reverse)
        # training updates so far: drives the KL warm-up and resumes with the checkpoint
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    # -- LatentVariableModel ----------------------------------------------------------------

    def prior(self) -> Distribution:
        """p(z) = N(0, I) over ``latent_dim`` dimensions, on the model's device and dtype."""
        zeros = torch.zeros(self.config.latent_dim, device=self.device, dtype=self.dtype)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def encode(self, x: Tensor, c: Tensor | int | None = None) -> Distribution:
        """q(z | x, c): a diagonal Normal, batch shape (B,), event shape (latent_dim,)."""
        x = self.check_x(x)
        return self._encode(x, self._one_hot(self.check_c(c, len(x))))

    def decode(self, z: Tensor, c: Tensor | int | None = None) -> Distribution:
        """p(x | z, c) for z of shape (*batch, B, latent_dim): batch shape (*batch, B), event
        shape ``event_shape``; c, when the model is conditional, has shape (B,)."""
        if z.dim() < 2 or z.shape[-1] != self.config.latent_dim:
            raise ValueError(
                f"z has shape {tuple(z.shape)}, expected (*batch, B, {self.config.latent_dim})"
            )
        onehot = self._one_hot(self.check_c(c, z.shape[-2]))
        return self._decode(z.to(self.dtype), onehot, validate=None)

    # -- the contract -----------------------------------------------------------------------

    def log_prob(self, x: Tensor, c: Tensor | int | None = None) -> Tensor:
        """Single-sample ELBO E_q[log p(x | z)] − KL(q ‖ p) in nats, shape (B,).

        An unbiased estimate with one reparameterised z. The VAE's KL is analytic, so the
        estimate still varies with z when q is the exact posterior; ``log_prob_iw(x, 1)``
        (the same bound, with log p(x, z) − log q(z | x)) is then exactly log p(x).
        """
        rec, kl = self.elbo_terms(x, c)
        return rec - kl

    def elbo_terms(self, x: Tensor, c: Tensor | int | None = None) -> tuple[Tensor, Tensor]:
        """(E_q log p(x | z), KL(q ‖ p)) per example in nats, from one draw of z: the two
        terms of ``log_prob``, for reports that show both."""
        x = self.check_x(x)
        return self._elbo_terms(x, self._one_hot(self.check_c(c, len(x))))

    def log_prob_iw(
        self,
        x: Tensor,
        k: int,
        c: Tensor | int | None = None,
        *,
        max_elements: int = IW_MAX_ELEMENTS,
    ) -> Tensor:
        """IWAE_k = log (1/k) Σ_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x), in nats, shape (B,).

        A lower bound on log p(x) that tightens as k grows (Burda et al. 2015). The k draws
        are taken at once and decoded in chunks of at most ``max_elements`` decoder outputs,
        so k = 1000 fits in memory; the result is differentiable (reparameterised draws).
        """
        x = self.check_x(x)
        log_px_z, log_pz, log_qz = self._iw_terms(
            x, self._one_hot(self.check_c(c, len(x))), k, max_elements
        )
        return torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)

    def loss(self, x: Tensor, c: Tensor | int | None = None, *, phase: str = "main") -> Loss:
        """Mean over the batch of −E_q log p(x | z) + β_t KL (or −IWAE_k when iw_samples > 1),
        in nats per example. Each call in training mode advances the KL warm-up by one.
        With iw_samples > 1 the ``kl`` and ``reconstruction`` metrics average the k draws
        (a Monte-Carlo KL) and ``beta`` is 1."""
        self._check_phase(phase)
        x = self.check_x(x)
        onehot = self._one_hot(self.check_c(c, len(x)))
        k = self.config.iw_samples
        if k > 1:
            log_px_z, log_pz, log_qz = self._iw_terms(x, onehot, k, IW_MAX_ELEMENTS)  # (k, B)
            iwae = torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)
            rec, kl = log_px_z.mean(0), (log_qz - log_pz).mean(0)  # k-sample ELBO terms
            beta = x.new_tensor(1.0)
            value = -iwae.mean()
        else:
            rec, kl = self._elbo_terms(x, onehot)
            beta = self._beta()
            value = (beta * kl - rec).mean()
        if self.training:
            self.num_updates += 1
        metrics = {
            "nelbo": (kl - rec).mean().detach(),
            "kl": kl.mean().detach(),
            "reconstruction": -rec.mean().detach(),
            "beta": beta.detach(),
        }
        return Loss(value, metrics)

    @torch.no_grad()
    def sample(
        self, n: int, c: Tensor | int | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """n draws x ~ p(x | z, c), z ~ p(z): shape (n, *event_shape), the model's dtype.
        ``generator`` (on the model's device) drives every draw; c may be one int label."""
        onehot = self._one_hot(self.check_c(c, n))
        z = self._sample_prior(n, generator)  # (n, latent)
        return self.head.sample(self._decode(z, onehot), generator).to(self.dtype)

    # -- pieces -----------------------------------------------------------------------------

    def _one_hot(self, c: Tensor | None) -> Tensor | None:
        return None if c is None else F.one_hot(c, self.num_classes).to(self.dtype)  # (B, K)

    def _encode(self, x: Tensor, onehot: Tensor | None) -> Distribution:
        h = self.head.encoder_input(x)
        if isinstance(self.encoder, ConvEncoder):
            out = self.encoder(h, onehot)  # (B, 2 * latent)
        else:
            h = h.flatten(1)  # (B, D)
            if onehot is not None:
                h = torch.cat([h, onehot], dim=-1)  # (B, D + K)
            out = self.encoder(h)  # (B, 2 * latent)
        mu, log_std = out.chunk(2, dim=-1)  # (B, latent) each
        return Independent(Normal(mu, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()), 1)

    def _decode(
        self, z: Tensor, onehot: Tensor | None, validate: bool | None = False
    ) -> Distribution:
        # validate=False inside the model: x was checked at entry and the checks cost as
        # much as the log-density on (k, B, D) decoder outputs
        lead = z.shape[:-1]
        if onehot is not None:
            z = torch.cat([z, onehot.expand(*lead, self.num_classes)], dim=-1)  # (*lead, L + K)
        params = self.decoder(z.reshape(-1, z.shape[-1]))  # (N, m * D) or (N, m * C, H, W)
        params = params.view(*lead, self.head.num_params, *self.event_shape)  # (*lead, m, *event)
        return self.head.distribution(params, validate)

    def _sample_prior(self, n: int, generator: torch.Generator | None) -> Tensor:
        shape = (n, self.config.latent_dim)
        return torch.randn(shape, generator=generator, device=self.device, dtype=self.dtype)

    def _kl(self, q: Distribution, z: Tensor) -> Tensor:
        """KL(q(z | x) ‖ p(z)) per example, in nats: analytic for the N(0, I) prior."""
        return kl_divergence(q, self.prior())

    def _elbo_terms(self, x: Tensor, onehot: Tensor | None) -> tuple[Tensor, Tensor]:
        """(E_q log p(x | z), KL) per example, one reparameterised draw of z."""
        q = self._encode(x, onehot)
        z = q.rsample()  # (B, latent)
        rec = self._decode(z, onehot).log_prob(self.head.target(x))  # (B,)
        return rec, self._kl(q, z)

    def _draw_cost(self) -> int:
        """Elements one draw of z costs per example in ``_iw_terms`` (decoder outputs)."""
        return self.head.num_params * self.num_dims

    def _iw_terms(
        self, x: Tensor, onehot: Tensor | None, k: int, max_elements: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """log p(x | z_i), log p(z_i), log q(z_i | x), each (k, B), for z_i ~ q(z | x)."""
        if k < 1:
            raise ValueError(f"k must be a positive number of importance samples, got {k}")
        q = self._encode(x, onehot)
        z = q.rsample((k,))  # (k, B, latent): all draws at once, small next to p(x | z)
        chunk = max(1, max_elements // (len(x) * self._draw_cost()))
        target, prior = self.head.target(x), self.prior()
        parts = []
        for zc in z.split(chunk):  # (k_chunk, B, latent)
            log_px_z = self._decode(zc, onehot).log_prob(target)  # (k_chunk, B)
            parts.append(torch.stack([log_px_z, prior.log_prob(zc), q.log_prob(zc)]))
        log_px_z, log_pz, log_qz = torch.cat(parts, dim=1)  # 3 x (k, B)
        return log_px_z, log_pz, log_qz

    def _beta(self) -> Tensor:
        """β_t = β · min(1, updates / kl_warmup_steps): the linear KL warm-up."""
        beta = self.config.beta
        steps = self.config.kl_warmup_steps
        if steps <= 0:
            return torch.tensor(beta, device=self.device, dtype=self.dtype)
        ramp = (self.num_updates.to(self.dtype) / steps).clamp(max=1.0)
        return beta * ramp


def _check_config(config: VAEConfig) -> None:
    fixes = []
    if config.latent_dim < 1:
        fixes.append(f"latent_dim must be >= 1, got {config.latent_dim}")
    if config.iw_samples < 1:
        fixes.append(f"iw_samples must be >= 1, got {config.iw_samples}")
    if config.beta < 0 or config.kl_warmup_steps < 0:
        fixes.append("beta and kl_warmup_steps must be >= 0")
    if config.iw_samples > 1 and (config.beta != 1.0 or config.kl_warmup_steps > 0):
        fixes.append("iw_samples > 1 trains IWAE, which has no β: set beta=1, kl_warmup_steps=0")
    if config.num_classes < 0 or config.conv_channels < 1:
        fixes.append("num_classes must be >= 0 and conv_channels >= 1")
    if fixes:
        raise ValueError("; ".join(fixes))
