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
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, Independent, Normal

from dgm.model import (
    ClassConditional,
    ConditionDropout,
    GenerativeModel,
    Likelihood,
    Loss,
    TextContext,
)
from dgm.models.latent.decoders import make_head
from dgm.models.latent.gibbs import GibbsCompletion
from dgm.nn import ConvDecoder, ConvEncoder, mlp
from dgm.nn.text_encoder import TextEncoder
from dgm.registry import register

# decoder outputs per chunk of log_prob_iw (4 MiB in float32): about 1300 rows of 784 pixels,
# enough for fast matrix products, small enough for the log-density to stay in cache; on
# one CPU thread 2**18 to 2**21 ran within 3 % of each other and 2**22 4-7 % slower
IW_MAX_ELEMENTS = 2**20
LOG_STD_MIN, LOG_STD_MAX = -10.0, 3.0  # clamp on the encoder's log σ: σ in [4.5e-5, 20]


Decoder = Literal["bernoulli", "gaussian", "categorical"]


@dataclasses.dataclass
class VAEConfig(ConditionDropout, TextContext, ClassConditional):
    latent_dim: int = 10  # dimensions of z (10 is CS236's choice for MNIST-size images)
    hidden_sizes: tuple[int, ...] = (300, 300)  # layer widths, e.g. 300,300; '' for none
    architecture: Literal["mlp", "conv"] = "mlp"  # mlp: any data; conv: images (C, H, W)
    conv_channels: int = 32  # width of the conv networks (conv only)
    decoder: Decoder = "bernoulli"  # p(x|z) for binary, real or 0..255 x (categorical: use conv)
    decoder_std: float | None = None  # gaussian σ; none: learned from z
    beta: float = 1.0  # weight of the KL term: 1 is the ELBO, > 1 a β-VAE
    kl_warmup_steps: int = 0  # steps over which β ramps up from 0 (0: no warm-up)
    iw_samples: int = 1  # k: 1 trains the ELBO, k > 1 the tighter IWAE_k bound
    text_features: int = 64  # width of the text encoder's output (token contexts only)


@dataclasses.dataclass
class VAESampleOptions:
    temperature: float = 1.0  # scale of the prior noise: z ~ N(0, T² I)
    mean: bool = False  # draw the decoder's mean E[x | z] instead of a sample of x


@register("vae", VAEConfig)
class VAE(GibbsCompletion, GenerativeModel):
    """Variational autoencoder (Kingma & Welling 2013): log_prob is the ELBO in nats.

    The encoder gives q(z | x, c) = N(μ, diag σ²) from one network whose output is split into
    (μ, log σ); the decoder gives p(x | z, c), a Bernoulli, Gaussian or 256-way categorical
    per dimension (``decoder``). ``beta`` weights the KL term (β-VAE, Higgins et al. 2017),
    optionally ramped up from 0 over ``kl_warmup_steps`` training updates; ``iw_samples`` = k
    > 1 trains the importance-weighted bound IWAE_k (Burda et al. 2015, arXiv:1509.00519);
    ``num_classes`` > 0 feeds a one-hot label to both networks (CVAE, Sohn et al. 2015);
    ``context_shape`` feeds a context tensor instead, flattened (e.g. a low-resolution image:
    p(x | c) is then super-resolution); with ``context_vocab`` > 0 the context is a text
    (tokens (T,), trailing token 0 is padding) read by a character-level ``TextEncoder``
    into ``text_features`` features, trained with the rest (text to image). With
    ``condition_dropout`` > 0 a share of training examples see no condition (a presence flag
    tells the networks), so ``c=None`` also works.
    ``complete`` draws missing dimensions by Metropolis-within-Gibbs (``GibbsCompletion``,
    Mattei & Frellsen 2018, arXiv:1802.04826), so the VAE is ``Completable``.

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
    sample_options = VAESampleOptions

    def __init__(self, event_shape: Iterable[int], config: VAEConfig) -> None:
        super().__init__(event_shape, config)
        _check_config(config)
        self.head = make_head(config.decoder, self.event_shape, config.decoder_std)
        self.support = self.head.support
        cond = self.conditioning
        # width of the condition features: one-hot label or flattened context, plus a
        # presence flag when c may be dropped
        if cond.context_vocab:  # a text: the features of a character-level encoder
            if len(cond.context_shape) != 1:
                raise ValueError(
                    f"a token context is a text of shape (T,), got {cond.context_shape}: set "
                    "context_shape=(T,), or context_vocab=0 for a float context"
                )
            self.text_encoder = TextEncoder(cond.context_vocab, config.text_features)
            K = config.text_features
        else:
            K = cond.num_classes or math.prod(cond.context_shape)
        K = 0 if cond.kind == "none" else K + int(cond.optional)
        self.cond_width = K
        L, m = config.latent_dim, self.head.num_params
        reverse = tuple(reversed(config.hidden_sizes))
        if config.architecture == "mlp":
            self.encoder = mlp(self.num_dims + K, config.hidden_sizes, 2 * L)
            self.decoder = mlp(L + K, reverse, m * self.num_dims)
        else:
            ch = config.conv_channels
            self.encoder = ConvEncoder(self.event_shape, 2 * L, ch, config.hidden_sizes, K)
            c, h, w = self.event_shape
            self.decoder = ConvDecoder(L + K, (m * c, h, w), ch, reverse)

    def support_hint(self) -> str:
        if self.config.decoder == "bernoulli":
            return "binarize the data (--binarize static) or model grey levels (--decoder gaussian)"
        if self.config.decoder == "categorical":
            return "give 8-bit integers 0..255 (--scale byte)"
        return ""

    # -- Encodable --------------------------------------------------------------------------

    def prior(self) -> Distribution:
        """p(z) = N(0, I) over ``latent_dim`` dimensions, on the model's device and dtype."""
        zeros = torch.zeros(self.config.latent_dim, device=self.device, dtype=self.dtype)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def encode(self, x: Tensor, c: Tensor | int | None = None) -> Distribution:
        """q(z | x, c): a diagonal Normal, batch shape (B,), event shape (latent_dim,)."""
        x = self.check_x(x)
        return self._encode(x, self._features(self.check_c(c, len(x)), len(x)))

    def decode(self, z: Tensor, c: Tensor | int | None = None) -> Distribution:
        """p(x | z, c) for z of shape (*batch, B, latent_dim): batch shape (*batch, B), event
        shape ``event_shape``; c, when the model is conditional, has shape (B,)."""
        if z.dim() < 2 or z.shape[-1] != self.config.latent_dim:
            raise ValueError(
                f"z has shape {tuple(z.shape)}, expected (*batch, B, {self.config.latent_dim})"
            )
        onehot = self._features(self.check_c(c, z.shape[-2]), z.shape[-2])
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
        return self._elbo_terms(x, self._features(self.check_c(c, len(x)), len(x)))

    def log_prob_iw(
        self,
        x: Tensor,
        k: int,
        c: Tensor | int | None = None,
        *,
        max_elements: int = IW_MAX_ELEMENTS,
        grad: bool = False,
    ) -> Tensor:
        """IWAE_k = log (1/k) Σ_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x), in nats, shape (B,).

        A lower bound on log p(x) that tightens as k grows (Burda et al. 2015). The k draws
        are taken at once and decoded in chunks of at most ``max_elements`` decoder outputs,
        so k = 1000 fits in memory. An estimator: it runs under ``torch.no_grad()`` unless
        ``grad=True``, which keeps the graph (reparameterised draws; memory grows with k).
        """
        x = self.check_x(x)
        onehot = self._features(self.check_c(c, len(x)), len(x))
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            log_px_z, log_pz, log_qz = self._iw_terms(x, onehot, k, max_elements)  # (k, B)
            return torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)

    def loss(self, x: Tensor, c: Tensor | int | None = None, *, phase: str = "main") -> Loss:
        """Mean over the batch of −E_q log p(x | z) + β_t KL (or −IWAE_k when iw_samples > 1),
        in nats per example. The KL warm-up follows ``training_step`` (set by the trainer).
        With iw_samples > 1 the ``kl`` and ``reconstruction`` metrics average the k draws
        (a Monte-Carlo KL) and ``beta`` is 1."""
        self._check_phase(phase)
        x = self.check_x(x)
        onehot = self._features(self.check_c(c, len(x)), len(x), drop=self.training)
        k = self.config.iw_samples
        if k > 1:
            log_px_z, log_pz, log_qz = self._iw_terms(x, onehot, k, IW_MAX_ELEMENTS)  # (k, B)
            iwae = torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)
            rec, kl = log_px_z.mean(0), (log_qz - log_pz).mean(0)  # k-sample ELBO terms
            beta = 1.0
            value = -iwae.mean()
        else:
            rec, kl = self._elbo_terms(x, onehot)
            beta = self._beta()
            value = (kl - rec).mean() if beta == 1.0 else (beta * kl - rec).mean()
        with torch.no_grad():  # the logged terms need no graph
            kl_mean, rec_mean = kl.mean(), rec.mean()
            metrics = {
                "nelbo": kl_mean - rec_mean,
                "kl": kl_mean,
                "reconstruction": -rec_mean,
                "beta": torch.tensor(beta),
            }
        return Loss(value, metrics)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        c: Tensor | int | None = None,
        *,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Tensor:
        """n draws x ~ p(x | z, c), z ~ p(z): shape (n, *event_shape), integer for the
        categorical decoder, else the model's dtype. ``generator`` (on the model's device)
        drives every draw; c may be one label or one context. Options (``VAESampleOptions``):
        ``temperature`` scales the prior noise, ``mean=True`` returns E[x | z]."""
        opts = self.sample_settings(options)
        if not opts.temperature > 0:
            raise ValueError(f"temperature must be positive, got {opts.temperature}")
        onehot = self._features(self.check_c(c, n), n)
        z = self._sample_prior(n, generator, opts.temperature)  # (n, latent)
        dist = self._decode(z, onehot)
        if opts.mean:
            return self.head.mean(dist).to(self.dtype)
        x = self.head.sample(dist, generator)
        return x.long() if self.integer_data else x.to(self.dtype)

    # -- pieces -----------------------------------------------------------------------------

    def _features(self, c: Tensor | None, n: int, drop: bool = False) -> Tensor | None:
        """The condition as the networks see it, (n, cond_width): a one-hot label or the
        flattened context (a text: its ``text_encoder`` features), then a presence flag when
        c may be dropped (zeros for c=None, and for a ``condition_dropout`` share of examples
        when ``drop``). None for an unconditional model."""
        cond = self.conditioning
        if cond.kind == "none":
            return None
        if c is None:  # accepted only when optional (check_c): the "no condition" code
            return torch.zeros(n, self.cond_width, device=self.device, dtype=self.dtype)
        if cond.kind == "classes":
            h = F.one_hot(c, cond.num_classes).to(self.dtype)  # (n, K)
        elif cond.context_vocab > 0:
            h = self.text_encoder(c)  # (n, text_features)
        else:
            h = c.flatten(1)  # (n, prod(context_shape))
        if not cond.optional:
            return h
        keep = torch.ones(n, 1, device=self.device, dtype=self.dtype)  # (n, 1)
        if drop:
            p = self.config.condition_dropout
            keep = (torch.rand(n, 1, device=self.device) >= p).to(self.dtype)
        return torch.cat([h * keep, keep], dim=-1)  # (n, cond_width)

    def _encode(self, x: Tensor, onehot: Tensor | None) -> Distribution:
        h = self.head.encoder_input(x).to(self.dtype)
        if isinstance(self.encoder, ConvEncoder):
            out = self.encoder(h, onehot)  # (B, 2 * latent)
        else:
            h = h.flatten(1)  # (B, D)
            if onehot is not None:
                h = torch.cat([h, onehot], dim=-1)  # (B, D + K)
            out = self.encoder(h)  # (B, 2 * latent)
        mu, log_std = out.chunk(2, dim=-1)  # (B, latent) each
        std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        # no argument checks: NaN from a diverged network reaches the loss, where the
        # trainer's guard names the fix, instead of a tensor dump from torch.distributions
        return Independent(Normal(mu, std, validate_args=False), 1, validate_args=False)

    def _decode(
        self, z: Tensor, onehot: Tensor | None, validate: bool | None = False
    ) -> Distribution:
        # p(x | z) as a distribution, for decode() and sample(); the loss and log_prob_iw
        # take head.log_likelihood of the same decoder output instead (no objects, no
        # second check of x)
        return self.head.distribution(self._decoder_params(z, onehot), validate)

    def _decoder_params(self, z: Tensor, onehot: Tensor | None) -> Tensor:
        """The decoder network's output for z (*lead, latent): (*lead, num_params, *event),
        what ``head.distribution`` and ``head.log_likelihood`` take."""
        lead = z.shape[:-1]
        if onehot is not None:
            z = torch.cat([z, onehot.expand(*lead, self.cond_width)], dim=-1)  # (*lead, L + K)
        params = self.decoder(z.reshape(-1, z.shape[-1]))  # (N, m * D) or (N, m * C, H, W)
        return params.view(*lead, self.head.num_params, *self.event_shape)  # (*lead, m, *event)

    def _sample_prior(
        self, n: int, generator: torch.Generator | None, temperature: float = 1.0
    ) -> Tensor:
        shape = (n, self.config.latent_dim)
        eps = torch.randn(shape, generator=generator, device=self.device, dtype=self.dtype)
        return temperature * eps

    def _kl(self, q: Distribution, z: Tensor) -> Tensor:
        """KL(q(z | x) ‖ p(z)) per example, in nats: analytic for the N(0, I) prior,
        Σ_j (μ_j² + σ_j² − 1)/2 − log σ_j (``kl_divergence(q, prior())`` without the objects)."""
        mu, std = q.base_dist.loc, q.base_dist.scale  # (B, latent) each
        return 0.5 * (mu.pow(2) + std.pow(2) - 1).sum(-1) - std.log().sum(-1)

    def _elbo_terms(self, x: Tensor, onehot: Tensor | None) -> tuple[Tensor, Tensor]:
        """(E_q log p(x | z), KL) per example, one reparameterised draw of z."""
        q = self._encode(x, onehot)
        z = q.rsample()  # (B, latent)
        rec = self.head.log_likelihood(self._decoder_params(z, onehot), x)  # (B,)
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
        mu, std = q.base_dist.loc, q.base_dist.scale  # (B, latent) each
        z = q.rsample((k,))  # (k, B, latent): all draws at once, small next to p(x | z)
        # log q(z | x) = Σ_j −ε_j²/2 − log σ_j − log √(2π) with ε = (z − μ)/σ: q.log_prob(z)
        norm = std.log().sum(-1) + mu.shape[-1] * 0.5 * math.log(2 * math.pi)  # (B,)
        log_qz = -0.5 * ((z - mu) / std).pow(2).sum(-1) - norm  # (k, B)
        chunk = max(1, max_elements // (len(x) * self._draw_cost()))
        prior = self.prior()
        log_px_z, log_pz = [], []
        for zc in z.split(chunk):  # (k_chunk, B, latent)
            params = self._decoder_params(zc, onehot)  # (k_chunk, B, m, *event)
            log_px_z.append(self.head.log_likelihood(params, x))  # (k_chunk, B)
            log_pz.append(prior.log_prob(zc))  # (k_chunk, B); a mixture prior is chunked too
        return torch.cat(log_px_z), torch.cat(log_pz), log_qz  # 3 x (k, B)

    def _beta(self) -> float:
        """β_t = β · min(1, t / kl_warmup_steps) at training step t: the linear KL warm-up."""
        beta, steps = self.config.beta, self.config.kl_warmup_steps
        ramp = 1.0 if steps <= 0 else min(1.0, self.training_step / steps)
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
    if config.num_classes < 0 or config.conv_channels < 1 or config.text_features < 1:
        fixes.append("num_classes must be >= 0, conv_channels and text_features >= 1")
    if not 0 <= config.condition_dropout < 1:
        fixes.append(f"condition_dropout must lie in [0, 1), got {config.condition_dropout}")
    if config.condition_dropout > 0 and not (config.num_classes or config.context_shape):
        fixes.append("condition_dropout needs a condition: set num_classes or context_shape")
    if fixes:
        raise ValueError("; ".join(fixes))
