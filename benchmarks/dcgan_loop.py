"""The reference of ``benchmarks/side_by_side_gan.py``: a hand-written DCGAN training loop in
the style of PyTorch's examples/dcgan, at the layer sizes of dgm's DCGAN networks.

Two plain ``nn.Module`` networks: a generator Linear(nz -> 2·ngf·H/4·W/4), BatchNorm, ReLU,
ConvTranspose(2·ngf -> ngf), BatchNorm, ReLU, ConvTranspose(ngf -> nc), sigmoid, and a
discriminator Conv(nc -> ndf), LeakyReLU(0.2), Conv(ndf -> 2·ndf), LeakyReLU(0.2),
Linear(2·ndf·H/4·W/4 -> 1) giving a logit. Their submodule names follow dgm's
``ConvGenerator`` and ``ProjectionDiscriminator``, so dgm's weights copy in as they are and
the loop's copy back (``Reference.as_dgm``). The loop is the example's: zero D's gradients,
D on the real batch, backward; z, G(z), D on the fakes, backward; Adam step; then zero G's
gradients, D(G(z)), backward, Adam step, with ``torch.optim.Adam`` (lr 2e-4, β = (0.5,
0.999)) and the example's in-place activations. Non-saturating: binary cross-entropy with
logits against labels 1 (real) and 0 (fake), the generator against 1; hinge: mean
relu(1 − D(x)) + mean relu(1 + D(G(z))), the generator −mean D(G(z)) (Lim & Ye 2017).

References:
    Radford, Metz & Chintala 2015, DCGAN, arXiv:1511.06434; PyTorch examples, dcgan/main.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import dgm
from benchmarks.gan import IMAGE

LR, BETAS = 2e-4, (0.5, 0.999)  # examples/dcgan's Adam, for both players


class RefGenerator(nn.Module):
    """z (B, nz) -> images (B, nc, H, W) in [0, 1]: examples/dcgan's generator at dgm's
    layer sizes (a linear projection to (2·ngf, H/4, W/4), then two stride-2 transposed
    convolutions). Submodule names follow dgm's ``ConvGenerator`` so weights copy as they
    are."""

    def __init__(self, nz: int, ngf: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        nc, h, w = shape
        self.start = (2 * ngf, h // 4, w // 4)
        self.project = nn.Linear(nz, math.prod(self.start))
        self.net = nn.Sequential(
            nn.BatchNorm2d(2 * ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(z).view(-1, *self.start)  # (B, 2ngf, H/4, W/4)
        return self.net(h)  # (B, nc, H, W)


class RefDiscriminator(nn.Module):
    """x (B, nc, H, W) -> logits (B,): examples/dcgan's discriminator at dgm's layer
    sizes (two stride-2 convolutions with leaky ReLU 0.2, a linear read-out, no sigmoid:
    the loss takes logits). Submodule names follow dgm's ``ProjectionDiscriminator``."""

    def __init__(self, nc: int, ndf: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        _, h, w = shape
        self.features = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        self.psi = nn.Linear(2 * ndf * (h // 4) * (w // 4), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.psi(self.features(x)).view(-1)  # (B,)


def _bce(v: Tensor, label: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(v, torch.full_like(v, label))


# objective -> (D's loss on real logits, D's loss on fake logits, G's loss on fake logits)
REFERENCE_LOSSES: dict[str, tuple[Callable[[Tensor], Tensor], ...]] = {
    "nonsaturating": (
        lambda v: _bce(v, 1.0),
        lambda v: _bce(v, 0.0),
        lambda v: _bce(v, 1.0),
    ),
    "hinge": (
        lambda v: F.relu(1 - v).mean(),
        lambda v: F.relu(1 + v).mean(),
        lambda v: -v.mean(),
    ),
}


class Reference:
    """The hand-written loop: examples/dcgan's D step then G step, each with its own
    ``torch.optim.Adam``; ``step(real)`` returns (D's loss, G's loss), detached."""

    def __init__(self, model: Any, objective: str, reuse: bool = False) -> None:
        cfg = model.config
        self.reuse = reuse  # examples/dcgan as it is: the G step scores the D step's fakes
        shape = tuple(model.event_shape)
        self.nz = cfg.latent_dim
        self.netG = RefGenerator(cfg.latent_dim, cfg.conv_channels, shape)
        self.netD = RefDiscriminator(shape[0], cfg.conv_channels, shape)
        self.netG.load_state_dict(model.generator.state_dict())  # dgm's initial weights
        self.netD.load_state_dict(model.discriminator.state_dict())
        self.netG.to(model.dtype).train()
        self.netD.to(model.dtype).train()
        self.d_real, self.d_fake, self.g_loss = REFERENCE_LOSSES[objective]
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=LR, betas=BETAS)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=LR, betas=BETAS)

    def step(self, real: Tensor) -> tuple[Tensor, Tensor]:
        b = len(real)
        # (1) the discriminator
        self.netD.zero_grad()
        errD_real = self.d_real(self.netD(real))
        errD_real.backward()
        noise = torch.randn(b, self.nz, dtype=real.dtype)
        with torch.set_grad_enabled(self.reuse):  # examples/dcgan's graph, reused in (2)
            fake = self.netG(noise)
        errD_fake = self.d_fake(self.netD(fake.detach()))
        errD_fake.backward()
        self.optD.step()
        # (2) the generator: on the same fakes (examples/dcgan) or on fresh z (dgm's default)
        self.netG.zero_grad()
        if not self.reuse:
            fake = self.netG(torch.randn(b, self.nz, dtype=real.dtype))
        errG = self.g_loss(self.netD(fake))
        errG.backward()
        self.optG.step()
        return (errD_real + errD_fake).detach(), errG.detach()

    def as_dgm(self, model: Any) -> Any:
        """A dgm model of ``model``'s config holding this loop's weights (and batch-norm
        statistics), to be measured by the same code as dgm's."""
        twin = dgm.create("gan", tuple(model.event_shape), **dgm_config(model)).to(model.dtype)
        twin.generator.load_state_dict(self.netG.state_dict())
        twin.discriminator.load_state_dict(self.netD.state_dict())
        return twin


def dgm_config(model: Any) -> dict[str, Any]:
    """The config fields of a dgm model, as keyword arguments of ``dgm.create``."""
    return {k: getattr(model.config, k) for k in ("objective", *IMAGE)}
