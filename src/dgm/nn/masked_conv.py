"""Masked convolutions for pixel models, and the gated PixelCNN layer.

A ``MaskedConv2d`` output at pixel (i, j) sees the pixels strictly before (i, j) in raster
order and, at (i, j) itself, the channel groups allowed by its mask type: with C colour
groups (input and output channels split into C equal, contiguous blocks), type "A" lets
output group g see input groups < g at the centre and type "B" groups <= g. One colour
(C = 1): A hides the centre pixel, B shows it. The rows below the centre are always masked,
so only the rows above and the centre row are stored (half the weights and FLOPs).

Every layer here also runs on a crop of the image: ``layer.on(h, window)`` takes a tensor
covering image rows ``window.top ..`` and columns ``window.left ..`` (either may lie
outside the image), zeroes the positions outside the image (exactly what the full
layer's zero padding reads there) and convolves without padding, returning the smaller
result and its window. With ``window=None`` it is the ordinary padded layer on the whole
image. A fast sampler computes one new pixel this way from just its receptive field.

References:
    van den Oord, Kalchbrenner & Kavukcuoglu 2016, Pixel Recurrent Neural Networks,
    arXiv:1601.06759 (masks A and B, colour groups).
    van den Oord et al. 2016, Conditional Image Generation with PixelCNN Decoders,
    arXiv:1606.05328 (gated layer: vertical and horizontal stacks).

Example:
    >>> import torch
    >>> conv = MaskedConv2d(3, 6, 3, "A", groups=3)
    >>> conv(torch.zeros(2, 3, 5, 5)).shape
    torch.Size([2, 6, 5, 5])
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MaskType = Literal["A", "B", "vertical"]


class Window(NamedTuple):
    """Where a tensor computed on a crop lies: the image row and column of its first
    entry (negative above or left of the image) and the image's height and width."""

    top: int
    left: int
    height: int
    width: int

    def inside(self, t: Tensor) -> Tensor:
        """Bool (h, w): which positions of t (*, h, w) lie inside the image."""
        rows = torch.arange(self.top, self.top + t.shape[-2], device=t.device)
        cols = torch.arange(self.left, self.left + t.shape[-1], device=t.device)
        return ((rows >= 0) & (rows < self.height))[:, None] & ((cols >= 0) & (cols < self.width))[
            None, :
        ]

    def zero_outside(self, t: Tensor) -> Tensor:
        """t with the positions outside the image set to 0 (the full layer's padding)."""
        return t.masked_fill(~self.inside(t), 0.0)

    def moved(self, rows: int, cols: int) -> Window:
        return self._replace(top=self.top + rows, left=self.left + cols)


def crop_to(t: Tensor, t_window: Window | None, window: Window | None, size: Tensor) -> Tensor:
    """The part of t (carrying ``t_window``) that covers ``window`` with the spatial size of
    ``size`` (a tensor); t itself on the full image (windows None)."""
    if window is None or t_window is None:
        return t
    r, c = window.top - t_window.top, window.left - t_window.left
    return t[..., r : r + size.shape[-2], c : c + size.shape[-1]]


def channel_groups(channels: int, groups: int) -> Tensor:
    """The colour group of each of ``channels`` channels: equal contiguous blocks."""
    if channels % groups:
        raise ValueError(
            f"{channels} channels do not split into {groups} colour groups: use a multiple of "
            f"{groups} (one block of channels per colour)"
        )
    return torch.arange(channels) // (channels // groups)


class MaskedConv2d(nn.Conv2d):
    """A (kh, kw) convolution, odd sizes, centred on the output pixel, masked causally.

    Mask types: "A" and "B" (see the module docstring) keep the rows above the centre and,
    on the centre row, the columns left of it plus the centre pixel's allowed channel
    groups; "vertical" keeps the rows above and the whole centre row (the vertical stack of
    the gated PixelCNN, whose output is used only shifted one row down). A 1 x k kernel
    keeps only the columns up to the centre. The weight holds just the kept rows (and
    columns), so nothing is computed for the masked-out part.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask_type: MaskType = "B",
        groups: int = 1,
    ) -> None:
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"kernel sizes must be odd (centred), got {(kh, kw)}")
        if mask_type not in ("A", "B", "vertical"):
            raise ValueError(f"mask_type must be 'A', 'B' or 'vertical', got {mask_type!r}")
        rows = kh // 2 + 1  # the rows above the centre, and the centre row
        self.pad_left = kw // 2
        self.pad_right = kw // 2 if rows > 1 else 0  # a single row keeps no column right
        cols = self.pad_left + 1 + self.pad_right
        super().__init__(in_channels, out_channels, (rows, cols))
        self.mask_type = mask_type
        self.colour_groups = groups
        mask = torch.ones(out_channels, in_channels, rows, cols)
        if mask_type != "vertical":
            mask[:, :, -1, self.pad_left + 1 :] = 0  # right of the centre
            g_out = channel_groups(out_channels, groups)[:, None]  # (out, 1)
            g_in = channel_groups(in_channels, groups)[None, :]  # (1, in)
            sees = g_out > g_in if mask_type == "A" else g_out >= g_in  # (out, in)
            mask[:, :, -1, self.pad_left] = sees.to(mask.dtype)
        self.register_buffer("mask", mask, persistent=False)
        with torch.no_grad():
            self.weight.mul_(self.mask)

    def forward(self, x: Tensor) -> Tensor:
        return self.on(x, None)[0]

    def on(self, x: Tensor, window: Window | None) -> tuple[Tensor, Window | None]:
        """The convolution on the whole image (window None: zero-padded, same size) or on a
        crop carrying ``window`` (outside zeroed, no padding: smaller); with its window."""
        if window is None:
            x = F.pad(x, (self.pad_left, self.pad_right, self.kernel_size[0] - 1, 0))
        else:
            x = window.zero_outside(x)
            window = window.moved(self.kernel_size[0] - 1, self.pad_left)
        return F.conv2d(x, self.weight * self.mask, self.bias), window

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}, groups={self.colour_groups}"


def gate(a: Tensor, groups: int) -> Tensor:
    """tanh(a_f) · σ(a_g) (B, F, H, W) from a (B, 2F, H, W) whose colour group g holds its
    F/C filter channels then its F/C gate channels, so group g of the result comes from
    group g of a (C = ``groups`` colours stay autoregressive)."""
    B, _, H, W = a.shape
    a = a.view(B, groups, 2, -1, H, W)  # (B, C, 2, F/C, H, W)
    return (torch.tanh(a[:, :, 0]) * torch.sigmoid(a[:, :, 1])).reshape(B, -1, H, W)


def shift_down(v: Tensor, window: Window | None) -> tuple[Tensor, Window | None]:
    """v moved one row down (row i gets v's row i - 1; row 0 gets zeros), so that what the
    vertical stack saw of row i - 1 and above reaches row i and nothing of row i does."""
    if window is None:
        return F.pad(v, (0, 0, 1, 0))[..., :-1, :], None
    return window.zero_outside(v), window.moved(1, 0)


class GatedLayer(nn.Module):
    """One gated PixelCNN layer (van den Oord et al. 2016, arXiv:1606.05328), both stacks.

    Vertical stack: v' = gate(V * v + S_v c), a (k//2 + 1) x k convolution over the rows
    above and the current row. Horizontal stack: h' = h + W_o gate(H * h + L shift(V * v)
    + S_h c), a 1 x (k//2 + 1) masked convolution over the current row up to the centre,
    plus the vertical pre-activations shifted one row down through a 1 x 1 link L, then a
    1 x 1 masked output map W_o and the residual (on every layer but the first, whose input
    is the image). Masks carry C colour groups, so channel ch at a pixel sees channels < ch
    there (type A, the first layer) or <= ch (type B). c, the conditioning features, enter
    both stacks through 1 x 1 maps (none when ``condition_features`` = 0). The ``last``
    layer returns its vertical pre-activations ungated: nothing reads them.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int,
        mask_type: Literal["A", "B"],
        groups: int = 1,
        condition_features: int = 0,
        last: bool = False,
    ) -> None:
        super().__init__()
        self.groups = groups
        self.last = last  # the last layer's vertical output would feed nothing: skip it
        self.residual = in_channels == channels and mask_type == "B"
        self.vertical = MaskedConv2d(in_channels, 2 * channels, kernel_size, "vertical")
        self.horizontal = MaskedConv2d(
            in_channels, 2 * channels, (1, kernel_size), mask_type, groups
        )
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)  # rows above only: unmasked
        self.out = MaskedConv2d(channels, channels, 1, "B", groups)
        self.condition_v = (
            nn.Conv2d(condition_features, 2 * channels, 1)
            if condition_features and not last
            else None
        )
        self.condition_h = (
            nn.Conv2d(condition_features, 2 * channels, 1) if condition_features else None
        )

    def vertical_step(
        self, v: Tensor, v_win: Window | None, cond: Tensor | None, c_win: Window | None
    ) -> tuple[Tensor, Window | None, Tensor, Window | None]:
        """The vertical stack: (v', its window, the link term L shift(V * v) that the
        horizontal stack adds, its window). Needs only rows above the ones it feeds."""
        v_pre, v_win2 = self.vertical.on(v, v_win)  # (B, 2F, *)
        shifted, s_win = shift_down(v_pre, v_win2)
        link = self.link(shifted)  # (B, 2F, *)
        if self.condition_v is not None and cond is not None:
            v_pre = v_pre + self.condition_v(crop_to(cond, c_win, v_win2, v_pre))
        v_next = v_pre if self.last else gate(v_pre, 1)  # (B, F, *): no colour order in v
        return v_next, v_win2, link, s_win

    def horizontal_step(
        self,
        h: Tensor,
        h_win: Window | None,
        link: Tensor,
        link_win: Window | None,
        cond: Tensor | None,
        c_win: Window | None,
    ) -> tuple[Tensor, Window | None]:
        """The horizontal stack given the vertical stack's link term: (h', its window)."""
        h_pre, h_win2 = self.horizontal.on(h, h_win)  # (B, 2F, *)
        h_pre = h_pre + crop_to(link, link_win, h_win2, h_pre)
        if self.condition_h is not None and cond is not None:
            h_pre = h_pre + self.condition_h(crop_to(cond, c_win, h_win2, h_pre))
        out = self.out(gate(h_pre, self.groups))  # (B, F, *)
        h = out + crop_to(h, h_win, h_win2, out) if self.residual else out
        return h, h_win2

    def forward(self, v: Tensor, h: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(v, h) -> (v', h') on the whole image; cond (B, F_c, H, W) or None."""
        v_next, _, link, _ = self.vertical_step(v, None, cond, None)
        return v_next, self.horizontal_step(h, None, link, None, cond, None)[0]
