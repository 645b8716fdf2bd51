"""PixelRNN with Row LSTM layers: an LSTM that runs down the image one row at a time.

A first masked convolution (type A) reads the image; each Row LSTM layer then computes,
for all rows at once, the input-to-state pre-activations K_is * x with a masked 1 x k
convolution (type B: the current row up to the current pixel), and, row by row, adds the
state-to-state part K_ss * h_{i-1}, an unmasked 1 x k convolution of the previous row's
hidden state:

    [o, f, i, g] = [σ, σ, σ, tanh](K_ss * h_{i-1} + K_is * x_i)
    c_i = f ⊙ c_{i-1} + i ⊙ g,    h_i = o ⊙ tanh(c_i)

with four gates per hidden unit, and a residual connection around a masked 1 x 1 map of
h. The hidden units are split into C colour groups (contiguous blocks), and the masks of
K_is and of the 1 x 1 maps follow them, so channel ch of a pixel sees channels < ch of
that pixel (<= ch after the first layer); K_ss needs no mask, since the whole row above
comes before every pixel of the current row. Two masked 1 x 1 maps give the head
parameters, as in PixelCNN.

Receptive field: triangular (van den Oord et al. 2016, section 3.1). On the current row
it reaches first // 2 columns left through the first layer and k // 2 more per Row LSTM
layer; above, h_{i-1} is read at k // 2 columns either side, so the context widens by
k // 2 columns per row upwards, a triangle over the pixel. Pixels far to the left on the
current row, and far to either side in the rows just above, never reach the output,
unlike the Diagonal BiLSTM's or the gated PixelCNN's full context
(tests/models/test_pixelrnn.py checks the exact shape).

Cost: slower than PixelCNN for the work it does. Each layer runs H small state-to-state
convolutions one after another where a convolutional layer runs one over all rows at
once, so its time grows with H even on hardware that would compute all rows in parallel
(a GPU). Measured on one CPU thread (2-core machine under load), batch 64 of 28 x 28
binary images, 64 channels, 7 layers (7 x 7 type A + 6): an Adam step takes 1.02-1.09x
the gated PixelCNN's (kernel 5), with half its parameters and multiply-adds per layer
(21 F^2 vs 41 F^2 per pixel); at batch 8, 1.10x. Sampling with ``RowSampler`` recomputes
one row per sub-pixel (about H times fewer operations than the naive loop: 7.3 s vs
about 240 s for 16 such images); completing the bottom half of 8 such images with it
takes 2.2 s against 47 s for the naive loop (same pixels).

References:
    van den Oord, Kalchbrenner & Kavukcuoglu 2016, Pixel Recurrent Neural Networks,
    arXiv:1601.06759 (Row LSTM, section 3.1; masks A and B, section 3.4).
    Hochreiter & Schmidhuber 1997, Long Short-Term Memory, Neural Computation 9.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.models.autoregressive.pixel import FastSampler, PixelConfig, PixelModel
from dgm.nn.masked_conv import MaskedConv2d
from dgm.registry import register


@dataclasses.dataclass
class PixelRNNConfig(PixelConfig):
    hidden_channels: int = 64  # LSTM units per layer (a multiple of the image's channels C)
    num_layers: int = 6  # Row LSTM layers after the first convolution (the paper: 12 on CIFAR)
    first_kernel: int = 7  # the first (type A) masked convolution is k x k, odd (paper: 7)
    kernel_size: int = 3  # width k of the 1 x k input- and state-to-state maps, odd (paper: 3)


class RowLSTM(nn.Module):
    """One Row LSTM layer with a residual connection: (B, F, H, W) -> (B, F, H, W).

    ``groups`` colour groups: unit u of group g sees the input at the rows above, and on
    the current row the columns left of j and groups <= g at j. ``condition_features`` > 0
    adds a 1 x 1 map of the conditioning features to the input-to-state pre-activations.
    """

    def __init__(
        self, channels: int, kernel_size: int, groups: int, condition_features: int = 0
    ) -> None:
        super().__init__()
        self.groups = groups
        self.input_to_state = MaskedConv2d(channels, 4 * channels, (1, kernel_size), "B", groups)
        self.state_to_state = nn.Conv1d(
            channels, 4 * channels, kernel_size, padding=kernel_size // 2
        )
        self.condition = (
            nn.Conv2d(condition_features, 4 * channels, 1) if condition_features else None
        )
        self.out = MaskedConv2d(channels, channels, 1, "B", groups)
        with torch.no_grad():  # forget gates open at the start, a common LSTM initialisation
            self.state_to_state.bias.view(groups, 4, -1)[:, 1] += 1.0  # (C, 4, F/C): gate f

    def cell(self, a: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """One row's LSTM update from the pre-activations a (B, 4F, W) and the cell state
        c (B, C, F/C, W) of the row above: the new (h (B, F, W), c)."""
        B, _, W = a.shape
        a = a.view(B, self.groups, 4, -1, W)  # (B, C, 4, F/C, W): colour, gate o f i g, unit
        o, f, i = a[:, :, 0].sigmoid(), a[:, :, 1].sigmoid(), a[:, :, 2].sigmoid()
        c = f * c + i * a[:, :, 3].tanh()  # (B, C, F/C, W)
        return (o * c.tanh()).reshape(B, -1, W), c  # h (B, F, W), colour groups contiguous

    def initial_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Zero (h, c) above row 0 for the input x (B, F, *, W)."""
        B, Fh, W = x.shape[0], x.shape[1], x.shape[-1]
        return x.new_zeros(B, Fh, W), x.new_zeros(B, self.groups, Fh // self.groups, W)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """x (B, F, H, W) -> (B, F, H, W): the input-to-state part for all rows at once,
        then the recurrence down the rows."""
        pre = self.input_to_state(x)  # (B, 4F, H, W)
        if self.condition is not None and cond is not None:
            pre = pre + self.condition(cond)
        h, c = self.initial_state(x)
        rows = []
        for i in range(x.shape[2]):
            h, c = self.cell(pre[:, :, i] + self.state_to_state(h), c)  # (B, F, W)
            rows.append(h)
        return x + self.out(torch.stack(rows, dim=2))  # (B, F, H, W)

    def row(
        self, x: Tensor, cond: Tensor | None, h: Tensor, c: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The layer on one row x (B, F, 1, W) (cond (B, F_c, 1, W) or None) given the
        state (h, c) of the row above: (output (B, F, 1, W), h, c) of this row."""
        pre = self.input_to_state(x)[:, :, 0]  # (B, 4F, W)
        if self.condition is not None and cond is not None:
            pre = pre + self.condition(cond)[:, :, 0]
        h, c = self.cell(pre + self.state_to_state(h), c)
        return x + self.out(h[:, :, None]), h, c  # (B, F, 1, W)


class RowLSTMNet(nn.Module):
    """First k x k type-A convolution, Row LSTM layers, two 1 x 1 type-B maps (ELU):
    (B, C, H, W) -> (B, C·P, H, W), channel group ch of the output (P channels) seeing the
    input before (i, j) and channels < ch at (i, j)."""

    def __init__(
        self, C: int, F_: int, P: int, layers: int, first: int, kernel: int, cond: int
    ) -> None:
        super().__init__()
        self.first = MaskedConv2d(C, F_, first, "A", C)
        self.condition = nn.Conv2d(cond, F_, 1) if cond else None
        self.layers = nn.ModuleList(RowLSTM(F_, kernel, C, cond) for _ in range(layers))
        self.out1 = MaskedConv2d(F_, F_, 1, "B", C)
        self.out2 = MaskedConv2d(F_, C * P, 1, "B", C)

    def inputs(self, x: Tensor, cond: Tensor | None) -> Tensor:
        """The first layer (and the conditioning): x (B, C, H', W) -> (B, F, H', W)."""
        h = self.first(x)
        if self.condition is not None and cond is not None:
            h = h + self.condition(cond)
        return h

    def head(self, h: Tensor) -> Tensor:
        """The last layer's output (B, F, *, W) -> head parameters (B, C·P, *, W)."""
        return self.out2(F.elu(self.out1(F.elu(h))))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        h = self.inputs(x, cond)  # (B, F, H, W)
        for layer in self.layers:
            h = layer(h, cond)
        return self.head(h)  # (B, C·P, H, W)


@register("pixelrnn", PixelRNNConfig)
class PixelRNN(PixelModel):
    """PixelRNN with Row LSTM layers (van den Oord et al. 2016): exact log_prob in nats over
    images (C, H, W).

    The network is described in the module docstring: triangular receptive field, and
    sequential over rows, so slower than PixelCNN for the work it does (measured there).
    Heads, ordering (raster, R -> G -> B), conditioning (``num_classes`` or
    ``context_shape``, added to every layer's input-to-state pre-activations), the naive
    sampler and completion come from ``PixelModel``. ``sample(..., fast=True)`` (the
    default) and ``complete`` draw with ``RowSampler``: the same weights and draws as the
    naive loop, recomputing only the current row.

    References:
        van den Oord, Kalchbrenner & Kavukcuoglu 2016, arXiv:1601.06759, section 3.1.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("pixelrnn", (1, 4, 4), hidden_channels=8, num_layers=2)
        >>> x = model.sample(3, generator=torch.Generator().manual_seed(0), temperature=0.9)
        >>> x.shape, model.log_prob(x).shape
        (torch.Size([3, 1, 4, 4]), torch.Size([3]))
    """

    def __init__(self, event_shape: Iterable[int], config: PixelRNNConfig) -> None:
        super().__init__(event_shape, config, condition_features=config.hidden_channels)
        self._check_layers(
            config.num_layers,
            config.hidden_channels,
            "block of LSTM units",
            first_kernel=config.first_kernel,
            kernel_size=config.kernel_size,
        )
        self.net = RowLSTMNet(
            self.event_shape[0],
            config.hidden_channels,
            self.num_head_params,
            config.num_layers,
            config.first_kernel,
            config.kernel_size,
            config.hidden_channels if self.conditional else 0,
        )

    def _fast_sampler(self) -> RowSampler:
        """``sample(..., fast=True)`` and ``complete``: only the current row is recomputed,
        carrying each layer's LSTM state (about H times fewer operations than the naive
        loop)."""
        return RowSampler(self)


class RowSampler(FastSampler):
    """Samples or completes a ``PixelRNN`` row by row: for each sub-pixel of row i drawn it
    runs the network on row i alone (the first layer on rows i - first // 2 .. i, each Row
    LSTM layer on row i from the state (h, c) it reached on row i - 1), which gives the
    full network's output on row i because nothing there depends on the rows below; once
    row i is drawn (or observed), one more pass stores each layer's state for row i + 1.
    The draws are made by the model's own ``_draw`` in the model's order, so they equal the
    naive loop's for the same generator (STYLE rule 10: the sampling algorithm apart from
    the network).
    """

    model: PixelRNN

    def fill(
        self,
        x: Tensor,
        observed: Tensor,
        c: Tensor | None,
        generator: torch.Generator | None,
        T: float,
    ) -> Tensor:
        """x (n, C, H, W) with its unobserved entries drawn as the naive loop draws them (see
        ``FastSampler.fill``); a row observed in every example costs one row pass."""
        model = self.model
        C, H, W = model.event_shape
        todo = (~observed.all(0)).tolist()  # [ch][i][j]: drawn (not observed in every example)
        image = model._scale(x)  # (n, C, H, W), as the network reads it
        cond = model._condition_features(c)  # (n, F, H, W) or None
        states = self.initial_states(image)
        for i in range(H):
            for j in range(W):
                for ch in range(C):
                    if not todo[ch][i][j]:
                        continue
                    params = self.row(image, cond, i, states)[0][:, ch, :, j]  # (n, P)
                    drawn = model._draw(params, generator, T)  # (n,)
                    value = self.keep_observed(x, observed, ch, i, j, drawn)
                    image[:, ch, i, j] = model._scale(value)
            if i < H - 1:
                states = self.row(image, cond, i, states)[1]  # each layer's state for row i + 1
        return x

    def initial_states(self, image: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Each layer's zero state (h, c) above row 0, for an image (n, C, H, W)."""
        net = self.model.net
        row0 = image.new_zeros(len(image), net.first.out_channels, 1, image.shape[-1])
        return [layer.initial_state(row0) for layer in net.layers]  # (n, F, W), (n, C, F/C, W)

    def row(
        self, image: Tensor, cond: Tensor | None, i: int, states: list[tuple[Tensor, Tensor]]
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """The head parameters (n, C, P, W) of row i of the scaled image (n, C, H, W), given
        the conditioning features (n, F, H, W) or None and each layer's state (h, c) on row
        i - 1; with each layer's state on row i."""
        net = self.model.net
        n, C, _, W = image.shape
        up = net.first.kernel_size[0] - 1  # rows above row i that the first layer reads
        rows = slice(max(0, i - up), i + 1)
        cond_i = None if cond is None else cond[:, :, i : i + 1]  # (n, F, 1, W)
        x = net.inputs(image[:, :, rows], None if cond is None else cond[:, :, rows])
        x = x[:, :, -1:]  # (n, F, 1, W): row i
        new = []
        for layer, (h, c) in zip(net.layers, states, strict=True):
            x, h, c = layer.row(x, cond_i, h, c)
            new.append((h, c))
        return net.head(x).view(n, C, -1, W), new  # (n, C, P, W)
