"""Generator and discriminator networks of the ``gan`` model.

MLPs for vectors and 2-D toys; DCGAN-style convolutional networks for images whose
height and width are multiples of 4 (28×28 Fashion-MNIST, 8×8 digits; any number of
channels): the generator projects z to a (2ch, H/4, W/4) map and doubles it twice with
stride-2 transposed convolutions (batch norm and ReLU between), the discriminator halves
it twice with stride-2 convolutions (leaky ReLU, no batch norm, so that a gradient
penalty per example stays well-defined). The discriminator is a projection
discriminator D(x, y) = ψ(φ(x)) + embed(y)ᵀ φ(x) when it is conditional.

References:
    Radford, Metz & Chintala 2015, DCGAN, arXiv:1511.06434.
    Miyato & Koyama 2018, cGANs with Projection Discriminator, arXiv:1802.05637.
    Miyato et al. 2018, Spectral Normalization for GANs, arXiv:1802.05957.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from dgm.model import Conditioning
from dgm.nn import mlp

LEAK = 0.2  # leaky ReLU slope of the discriminators (DCGAN)


def conv_fits(event_shape: tuple[int, ...]) -> bool:
    """True when the DCGAN networks fit the event: an image (C, H, W) with H and W
    multiples of 4."""
    return len(event_shape) == 3 and event_shape[1] % 4 == 0 and event_shape[2] % 4 == 0


class MLPGenerator(nn.Module):
    """z (n, in_features) -> raw output (n, *out_shape), ReLU hidden layers."""

    def __init__(
        self, in_features: int, hidden_sizes: tuple[int, ...], out_shape: torch.Size
    ) -> None:
        super().__init__()
        self.out_shape = torch.Size(out_shape)
        self.net = mlp(in_features, hidden_sizes, self.out_shape.numel())

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).reshape(len(z), *self.out_shape)  # (n, *out_shape)


class ConvGenerator(nn.Module):
    """DCGAN generator: z (n, in_features) -> raw image (n, C, H, W), H and W multiples of 4."""

    def __init__(self, in_features: int, out_shape: torch.Size, channels: int) -> None:
        super().__init__()
        c, h, w = out_shape
        if not conv_fits(tuple(out_shape)):
            raise ValueError(
                f"the conv generator makes images (C, H, W) with H and W multiples of 4, "
                f"got {tuple(out_shape)}: use --architecture mlp"
            )
        self.start = (2 * channels, h // 4, w // 4)
        self.project = nn.Linear(in_features, math.prod(self.start))
        self.net = nn.Sequential(
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.ConvTranspose2d(channels, c, 4, stride=2, padding=1),
        )

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(z).reshape(len(z), *self.start)  # (n, 2ch, H/4, W/4)
        return self.net(h)  # (n, C, H, W)


def mlp_features(in_features: int, hidden_sizes: tuple[int, ...]) -> nn.Sequential:
    """φ of an MLP discriminator: flatten, then Linear + leaky ReLU per width."""
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip((in_features, *hidden_sizes), hidden_sizes, strict=False):
        layers += [nn.Linear(a, b), nn.LeakyReLU(LEAK)]
    return nn.Sequential(*layers)


def conv_features(in_channels: int, channels: int) -> nn.Sequential:
    """φ of a DCGAN discriminator: two stride-2 convolutions, leaky ReLU, flatten."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 4, stride=2, padding=1),
        nn.LeakyReLU(LEAK),
        nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),
        nn.LeakyReLU(LEAK),
        nn.Flatten(),
    )


class ProjectionDiscriminator(nn.Module):
    """D(x, c) = ψ(φ(x)) + embed(c)ᵀ φ(x): a raw score (n,) (Miyato & Koyama 2018).

    ``embed`` is a learned vector per class (``nn.Embedding``) for labels, a linear map
    of the flattened context for a float context, absent for an unconditional D. With
    ``spectral_norm`` every linear and convolutional layer of φ and ψ is normalised to
    spectral norm 1 (``torch.nn.utils.parametrizations.spectral_norm``).

    Example:
        >>> import torch
        >>> from dgm.model import Conditioning
        >>> d = ProjectionDiscriminator(mlp_features(2, (8,)), 8, Conditioning(num_classes=3))
        >>> d(torch.zeros(4, 2), torch.tensor([0, 1, 2, 0])).shape
        torch.Size([4])
    """

    def __init__(
        self,
        features: nn.Module,
        width: int,
        conditioning: Conditioning,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.features = features
        self.psi = nn.Linear(width, 1)
        self.embed: nn.Module | None = None
        if conditioning.kind == "classes":
            self.embed = nn.Embedding(conditioning.num_classes, width)
            nn.init.normal_(self.embed.weight, std=0.02)
        elif conditioning.kind == "context":
            self.embed = nn.Linear(math.prod(conditioning.context_shape), width, bias=False)
        if spectral_norm:
            for module in [*self.features.modules(), self.psi]:
                if isinstance(module, (nn.Linear, nn.Conv2d)):
                    _spectral_norm(module)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        phi = self.features(x)  # (n, width)
        out = self.psi(phi).squeeze(-1)  # (n,)
        if self.embed is not None and c is not None:
            e = self.embed(c if not c.is_floating_point() else c.flatten(1))  # (n, width)
            out = out + (e * phi).sum(-1)
        return out
