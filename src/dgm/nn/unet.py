"""A small U-Net for diffusion models: residual blocks with a sinusoidal time embedding,
self-attention at the lowest resolution, an optional class embedding and optional extra
input channels (a context image, for image-to-image models).

References:
    Ronneberger, Fischer & Brox 2015, U-Net, arXiv:1505.04597.
    Ho, Jain & Abbeel 2020, arXiv:2006.11239 (the DDPM U-Net: Wide ResNet blocks, GroupNorm,
    sinusoidal time embedding, attention at 16x16).
    Vaswani et al. 2017, Attention Is All You Need, arXiv:1706.03762 (the embedding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features of (integer or real) timesteps t (B,) -> (B, dim): sines and
    cosines at geometrically spaced frequencies from 1 to 1/max_period (Vaswani et al.).

    Example:
        >>> timestep_embedding(torch.tensor([0, 10]), 6).shape
        torch.Size([2, 6])
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )  # (half,)
    angles = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, 2 half)
    if dim % 2:
        emb = F.pad(emb, (0, 1))  # (B, dim)
    return emb


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, 8), channels)  # up to 8 groups that divide C


class ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 conv, plus the projected time embedding, twice, and a skip."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2, self.conv2 = _norm(out_ch), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, H, W)
        h = h + self.emb(F.silu(emb))[:, :, None, None]  # (B, out, 1, 1) broadcast
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H·W positions, with a residual connection."""

    def __init__(self, channels: int, heads: int = 1) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention heads ({heads}) must divide the channels ({channels})")
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (B, heads, HW, C / heads)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C / heads)
        h = h.transpose(-1, -2).reshape(B, C, H, W)  # (B, C, H, W)
        return x + self.out(h)


class UNet(nn.Module):
    """ε(x, t, label, extra) for images (B, C, H, W) -> (B, C, H, W).

    Levels of ``channels · channel_mult[i]`` channels, ``num_res_blocks`` residual blocks
    each, halved in size between levels (odd sizes round up, the decoder interpolates back
    to each skip's size); the lowest level and the middle have self-attention. ``t`` (B,)
    enters through a sinusoidal embedding and an MLP; ``num_classes`` > 0 adds a label
    embedding with ``num_classes + 1`` rows when ``null_label`` (the last row is "no
    label", for classifier-free guidance); ``extra_channels`` are concatenated to x at the
    input (an upsampled context image).

    Example:
        >>> net = UNet(1, channels=8, channel_mult=(1, 2), num_classes=3, null_label=True)
        >>> net(torch.zeros(2, 1, 7, 5), torch.tensor([0, 9]), torch.tensor([1, 3])).shape
        torch.Size([2, 1, 7, 5])
    """

    def __init__(
        self,
        in_channels: int,
        *,
        channels: int = 32,
        channel_mult: tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention_heads: int = 1,
        num_classes: int = 0,
        null_label: bool = False,
        extra_channels: int = 0,
    ) -> None:
        super().__init__()
        if channels < 1 or not channel_mult or min(channel_mult) < 1 or num_res_blocks < 1:
            raise ValueError(
                "channels, every channel_mult entry and num_res_blocks must be >= 1, got "
                f"{channels}, {channel_mult}, {num_res_blocks}"
            )
        self.channels = channels
        emb = 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.label_emb = (
            nn.Embedding(num_classes + int(null_label), emb) if num_classes > 0 else None
        )
        self.inp = nn.Conv2d(in_channels + extra_channels, channels, 3, padding=1)
        widths = [channels * m for m in channel_mult]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = channels
        for i, w in enumerate(widths):
            blocks = [ResBlock(prev if j == 0 else w, w, emb) for j in range(num_res_blocks)]
            self.down.append(nn.ModuleList(blocks))
            prev = w
            last = i == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(w, w, 3, 2, padding=1))
        self.down_attn = SelfAttention(prev, attention_heads)
        self.mid1, self.mid_attn = ResBlock(prev, prev, emb), SelfAttention(prev, attention_heads)
        self.mid2 = ResBlock(prev, prev, emb)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            blocks = [ResBlock((prev + w) if j == 0 else w, w, emb) for j in range(num_res_blocks)]
            self.up.append(nn.ModuleList(blocks))
            prev = w
        deeper = list(reversed(widths))[:-1]  # the width h has when it moves up a level
        self.upconv = nn.ModuleList(nn.Conv2d(w, w, 3, padding=1) for w in deeper)
        self.out = nn.Sequential(_norm(prev), nn.SiLU(), nn.Conv2d(prev, in_channels, 3, padding=1))

    def forward(
        self, x: Tensor, t: Tensor, label: Tensor | None = None, extra: Tensor | None = None
    ) -> Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.channels).to(x.dtype))  # (B, emb)
        if self.label_emb is not None:
            if label is None:
                raise ValueError("this U-Net is class-conditional: pass label (B,)")
            emb = emb + self.label_emb(label)  # (B, emb)
        if extra is not None:
            x = torch.cat([x, extra], dim=1)  # (B, C + extra, H, W)
        h = self.inp(x)  # (B, ch, H, W)
        skips = []
        for i, (blocks, down) in enumerate(zip(self.down, self.downsample, strict=True)):
            for block in blocks:
                h = block(h, emb)
            if i == len(self.down) - 1:
                h = self.down_attn(h)  # attention at the lowest resolution
            skips.append(h)
            h = down(h)  # (B, w, ceil(H / 2), ceil(W / 2)) except at the last level
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for i, blocks in enumerate(self.up):
            skip = skips.pop()
            if i > 0:  # up one level: back to the skip's size
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")  # (B, w', H_i, W_i)
                h = self.upconv[i - 1](h)
            h = torch.cat([h, skip], dim=1)  # (B, w + w_skip, H_i, W_i)
            for block in blocks:
                h = block(h, emb)
        return self.out(h)
