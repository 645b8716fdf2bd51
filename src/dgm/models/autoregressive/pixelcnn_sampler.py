"""PixelCNN's incremental sampler: per-layer activation caches, so that each new sub-pixel
costs one output position per layer instead of a network pass over the image.

Why it is exact and cheap: every masked layer's output at (i, j) reads its input only at
rows above i and at row i up to column j (and, at (i, j) itself, only earlier channel
groups). So once the sampler has drawn every pixel before (i, j), each layer's activations
there are final and need never be recomputed; to draw at (i, j) it computes, layer by
layer, the single position (i, j) from the cached activations around it (the rows above,
and row i left of j). The gated network's vertical stack, whose row r feeds only rows
below r, is computed one whole row at a time, when that row of the image is complete.

Positions skipped by a completion (observed in every example) are caught up lazily in
blocks: a run of whole rows, or a stretch of one row, is one convolution per layer. All
activations are computed by the same masked weights as the full network, so the outputs
equal the naive loop's to rounding, and the draws (the model's own ``_draw``, in the
model's order, from the same generator) are the naive loop's pixels.

References:
    Ramachandran et al. 2017, Fast Generation for Convolutional Autoregressive Models,
    arXiv:1704.06001 (caching each layer's activations so a new pixel costs one position
    per layer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.models.autoregressive.pixel import FastSampler
from dgm.nn.masked_conv import MaskedConv2d, gate

if TYPE_CHECKING:
    from dgm.models.autoregressive.pixelcnn import GatedNet, PixelCNN, PlainNet


class Region(NamedTuple):
    """Image rows r0..r1 and columns c0..c1, inclusive: a stretch of one row, or whole rows."""

    r0: int
    r1: int
    c0: int
    c1: int


class Canvas:
    """Activations of one layer (B, F, H, W) stored with ``pad`` zero rows above and zero
    columns either side, as a full layer's zero padding reads them."""

    def __init__(self, like: Tensor, channels: int, H: int, W: int, pad: int) -> None:
        """Zeros (B, channels, pad + H, pad + W + pad), B, dtype and device those of like."""
        self.pad = pad
        self.data = like.new_zeros(len(like), channels, pad + H, pad + W + pad)

    def get(self, r: Region) -> Tensor:
        """The activations in region r (B, F, rows, cols)."""
        p = self.pad
        return self.data[:, :, p + r.r0 : p + r.r1 + 1, p + r.c0 : p + r.c1 + 1]

    def put(self, r: Region, value: Tensor) -> None:
        p = self.pad
        self.data[:, :, p + r.r0 : p + r.r1 + 1, p + r.c0 : p + r.c1 + 1] = value

    def around(self, r: Region, conv: MaskedConv2d) -> Tensor:
        """What ``conv`` reads to give its output on r: the kept rows above r and the
        columns either side (B, F, rows + kh - 1, cols + left + right)."""
        p, up = self.pad, conv.kernel_size[0] - 1
        rows = slice(p + r.r0 - up, p + r.r1 + 1)
        return self.data[:, :, rows, p + r.c0 - conv.pad_left : p + r.c1 + 1 + conv.pad_right]


class Convolutions:
    """The network's convolutions with their masked weights formed once: ``self(conv, x)``
    is ``conv`` without padding on x (what ``Canvas.around`` gave); for one output
    position, the cheaper matrix product of the flattened patch and weight."""

    def __init__(self) -> None:
        self.weights: dict[nn.Conv2d, tuple[Tensor, Tensor, Tensor | None]] = {}

    def __call__(self, conv: nn.Conv2d, x: Tensor) -> Tensor:
        if conv not in self.weights:
            w = conv.weight * conv.mask if isinstance(conv, MaskedConv2d) else conv.weight
            self.weights[conv] = (w, w.flatten(1).T.contiguous(), conv.bias)  # flat (in·k, out)
        w, flat, bias = self.weights[conv]
        B, _, h, wd = x.shape
        if (h, wd) != w.shape[-2:]:
            return F.conv2d(x, w, bias)  # (B, out, h - kh + 1, wd - kw + 1)
        patch = x.reshape(B, -1)  # (B, in·kh·kw)
        out = patch @ flat if bias is None else torch.addmm(bias, patch, flat)
        return out.view(B, -1, 1, 1)  # (B, out, 1, 1)


def padding(convs: list[MaskedConv2d]) -> int:
    """The zero border every canvas needs for all of ``convs``."""
    return max(max(c.kernel_size[0] - 1, c.pad_left, c.pad_right) for c in convs)


def net_shape(canvas: Canvas) -> tuple[int, int]:
    """(H, W) of the image a canvas stores."""
    _, _, h, w = canvas.data.shape
    return h - canvas.pad, w - 2 * canvas.pad


def head(net: PlainNet | GatedNet, conv: Convolutions, h: Tensor) -> Tensor:
    """The output maps of either network on its last activations h (B, F, 1, 1): (B, C·P)."""
    return conv(net.out2, F.elu(conv(net.out1, F.elu(h))))[:, :, 0, 0]


class Cache(Protocol):
    def compute(self, r: Region) -> None: ...  # every layer's activations on r
    def head(self, i: int, j: int) -> Tensor: ...  # the output (B, C·P) at (i, j)


class PlainCache:
    """Each layer's residual stream h_l of a ``PlainNet`` on a ``Canvas``; ``image`` is the
    scaled image the first layer reads."""

    def __init__(self, net: PlainNet, image: Canvas, cond: Tensor | None) -> None:
        self.net = net
        self.image = image
        self.conv = Convolutions()
        H, W = net_shape(image)
        width = net.first.out_channels
        self.h = [Canvas(image.data, width, H, W, image.pad) for _ in range(len(net.hidden) + 1)]
        self.cond = (
            None
            if net.condition is None or cond is None
            else [proj(cond) for proj in net.condition]  # (B, F, H, W) per layer
        )

    def compute(self, r: Region) -> None:
        """h_l on r for every layer, as ``PlainNet.forward``: h_0 = first(x), then
        h_l = h_{l-1} + hidden(elu(h_{l-1})), each plus its conditioning term."""
        net, rows, cols = self.net, slice(r.r0, r.r1 + 1), slice(r.c0, r.c1 + 1)
        h = self.conv(net.first, self.image.around(r, net.first))  # (B, F, rows, cols)
        for layer in range(len(self.h)):
            if layer > 0:
                conv = net.hidden[layer - 1]
                h_in = self.h[layer - 1]
                h = h_in.get(r) + self.conv(conv, F.elu(h_in.around(r, conv)))  # residual
            if self.cond is not None:
                h = h + self.cond[layer][:, :, rows, cols]
            self.h[layer].put(r, h)

    def head(self, i: int, j: int) -> Tensor:
        h = self.h[-1].get(Region(i, i, j, j))  # (B, F, 1, 1)
        return head(self.net, self.conv, h)


class GatedCache:
    """A ``GatedNet``'s vertical stack v_l and link terms, computed a whole row at a time
    once that row of the image is complete, and its horizontal stack h_l, on canvases."""

    def __init__(self, net: GatedNet, image: Canvas, cond: Tensor | None) -> None:
        self.net = net
        self.image = image
        self.conv = Convolutions()
        H, W = net_shape(image)
        B, p = image.data.shape[0], image.pad
        widths = [layer.out.out_channels for layer in net.layers]
        self.v = [image] + [Canvas(image.data, f, H, W, p) for f in widths[:-1]]  # inputs
        self.h = [image] + [Canvas(image.data, f, H, W, p) for f in widths]  # inputs, last out
        self.link = []  # (B, 2F, H, W): row 0 is the link of the zero row shift_down adds
        for layer, f in zip(net.layers, widths, strict=True):
            link = image.data.new_empty(B, 2 * f, H, W)
            link[:, :, :1] = layer.link(image.data.new_zeros(B, 2 * f, 1, W))
            self.link.append(link)
        self.cond_v: list[Tensor | None] = []
        self.cond_h: list[Tensor | None] = []
        for layer in net.layers:
            v_proj, h_proj = layer.condition_v, layer.condition_h
            self.cond_v.append(None if v_proj is None or cond is None else v_proj(cond))
            self.cond_h.append(None if h_proj is None or cond is None else h_proj(cond))
        self.rows_done = 0  # the vertical stack is computed on rows < rows_done

    def vertical(self, upto: int) -> None:
        """The vertical stack on rows rows_done..upto - 1 (complete image rows), and the
        link terms of the rows below them (``GatedLayer.vertical_step``)."""
        if upto <= self.rows_done:
            return
        H, W = net_shape(self.image)
        r = Region(self.rows_done, upto - 1, 0, W - 1)
        below = slice(r.r0 + 1, min(r.r1 + 2, H))
        for n, layer in enumerate(self.net.layers):
            v_in = self.v[n].around(r, layer.vertical)
            v_pre = self.conv(layer.vertical, v_in)  # (B, 2F, rows, W)
            if below.stop > below.start:  # the last image row feeds no row below
                link = self.conv(layer.link, v_pre[:, :, : below.stop - below.start])
                self.link[n][:, :, below] = link
            if layer.last:
                break
            cond = self.cond_v[n]
            if cond is not None:
                v_pre = v_pre + cond[:, :, r.r0 : r.r1 + 1]
            self.v[n + 1].put(r, gate(v_pre, 1))
        self.rows_done = upto

    def compute(self, r: Region) -> None:
        """The horizontal stack on r for every layer (``GatedLayer.horizontal_step``), after
        the vertical stack of the rows above r's last (complete: they are before r)."""
        self.vertical(r.r1)
        rows, cols = slice(r.r0, r.r1 + 1), slice(r.c0, r.c1 + 1)
        for n, layer in enumerate(self.net.layers):
            h_pre = self.conv(layer.horizontal, self.h[n].around(r, layer.horizontal))
            h_pre = h_pre + self.link[n][:, :, rows, cols]  # (B, 2F, rows, cols)
            cond = self.cond_h[n]
            if cond is not None:
                h_pre = h_pre + cond[:, :, rows, cols]
            out = self.conv(layer.out, gate(h_pre, layer.groups))  # (B, F, rows, cols)
            self.h[n + 1].put(r, out + self.h[n].get(r) if layer.residual else out)

    def head(self, i: int, j: int) -> Tensor:
        h = self.h[-1].get(Region(i, i, j, j))  # (B, F, 1, 1)
        return head(self.net, self.conv, h)


class IncrementalSampler(FastSampler):
    """Samples or completes a ``PixelCNN`` with per-layer activation caches (module
    docstring): for each sub-pixel (ch, i, j) drawn, one output position per layer. Its
    draws, by the model's ``_draw`` in the model's order, are the naive loop's pixels
    (STYLE rule 10: the sampling algorithm apart from the network)."""

    model: PixelCNN

    def fill(
        self,
        x: Tensor,
        observed: Tensor,
        c: Tensor | None,
        generator: torch.Generator | None,
        T: float,
    ) -> Tensor:
        """x (n, C, H, W) with its unobserved entries drawn as the naive loop draws them (see
        ``FastSampler.fill``); pixels observed in every example are only caught up, a block
        at a time, when a later draw needs them."""
        model, net = self.model, self.model.net
        n = len(x)
        C, H, W = model.event_shape
        image = Canvas(x.to(model.dtype), C, H, W, net.padding)  # x scaled, zero border
        image.put(Region(0, H - 1, 0, W - 1), model._scale(x))
        cond = model._condition_features(c)  # (n, F, H, W) or None
        cache: Cache = net.cache(image, cond)
        skip = observed.flatten(1).all(0).tolist()  # (D,): observed in every example
        ready = 0  # every layer is final on the pixels before this one (raster index)
        for d in model.ordering().tolist():
            if skip[d]:
                continue
            ch, rest = divmod(d, H * W)
            i, j = divmod(rest, W)
            for region in pixels_between(ready, rest, W):
                cache.compute(region)
            cache.compute(Region(i, i, j, j))
            drawn = model._draw(cache.head(i, j).view(n, C, -1)[:, ch], generator, T)  # (n,)
            value = self.keep_observed(x, observed, ch, i, j, drawn)
            image.data[:, ch, image.pad + i, image.pad + j] = model._scale(value)
            # no layer at (i, j) reads its last channel: after it, (i, j) is final
            ready = rest + 1 if ch == C - 1 else rest
        return x


def pixels_between(start: int, stop: int, W: int) -> list[Region]:
    """Raster pixels start..stop - 1 of an image W wide as at most three regions, in
    order: the rest of start's row, whole rows, the beginning of the row of stop - 1."""
    if start >= stop:
        return []
    i, j = divmod(start, W)
    last_row, last_col = divmod(stop - 1, W)
    if i == last_row:
        return [Region(i, i, j, last_col)]
    regions = []
    if j > 0:
        regions.append(Region(i, i, j, W - 1))
        i += 1
    whole = last_row if last_col == W - 1 else last_row - 1  # the last whole row
    if whole >= i:
        regions.append(Region(i, whole, 0, W - 1))
    if last_col < W - 1:
        regions.append(Region(last_row, last_row, 0, last_col))
    return regions
