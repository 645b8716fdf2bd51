"""benchmarks/peer_sampling.py: the checks and the table's sampling cells say what was
measured. Whether the peer's NADE and MADE copied into dgm's give the same log p and
pixels needs pytorch-generative's checkout, which no package index has: the benchmark
checks it each time it runs (it stops when log p differs; the table says when pixels do),
not the suite, which skips nothing but the Debian extras."""

import math

import pytest
import torch
from benchmarks import peer_sampling as sampling
from benchmarks import side_by_side_autoregressive as bench
from benchmarks.pytorch_generative import residual_once


def test_binary_image_batch() -> None:
    x = torch.tensor([0.0, 1.0]).repeat(8).view(4, 1, 2, 2)
    assert sampling.is_binary_image_batch(x, 4, (1, 2, 2))
    assert not sampling.is_binary_image_batch(x, 3, (1, 2, 2))  # wrong count
    assert not sampling.is_binary_image_batch(x.view(4, 4), 4, (1, 2, 2))  # wrong shape
    assert not sampling.is_binary_image_batch(x * 0.5, 4, (1, 2, 2))  # not binary


def _seed(speedup: float, same: bool = True) -> dict:
    return {
        "copied": True,
        "valid": True,
        "median_s": {"dgm": 1.0, "peer": speedup},
        "speedup": speedup,
        "same_pixels": same,
        "equal_pixel_fraction": 1.0 if same else 0.75,
    }


def test_summary_over_seeds() -> None:
    summary = sampling.summarise([_seed(2.0), _seed(4.0), _seed(3.0)], bench.interval)
    assert summary["speedup"]["mean"] == pytest.approx(3.0)
    assert summary["speedup"]["half_width"] == pytest.approx(4.303 * 1.0 / math.sqrt(3), 1e-3)
    assert summary["same_pixels"] and summary["valid"]
    mixed = sampling.summarise([_seed(2.0), _seed(2.0, same=False)], bench.interval)
    assert not mixed["same_pixels"] and mixed["equal_pixel_fraction"] == 0.75
    assert "DIFFER" in sampling.check_cell(mixed) and "75.0 %" in sampling.check_cell(mixed)


def test_the_side_by_side_summary_reads_dgm_against_the_peer() -> None:
    """Per seed dgm 2 ms and 10 nats, the peer 1 ms and 9 nats, a dgm variant 11 nats:
    ms ratio dgm / peer 2, NLL difference dgm − peer +1, variant − dgm +1."""
    row = {"dgm": {"ms_per_step": 2.0, "nll": 10.0}, bench.PEER: {"ms_per_step": 1.0, "nll": 9.0},
           "dgm, wide": {"nll": 11.0}}  # fmt: skip
    summary = bench.summarise([row, row, row], ["wide"])
    assert summary["ms_ratio"]["mean"] == pytest.approx(2.0)
    assert summary["nll_difference"]["mean"] == pytest.approx(1.0)
    assert summary["variant_nll_difference"]["wide"]["mean"] == pytest.approx(1.0)


def test_the_peers_nll_from_logits_counts_every_pixel() -> None:
    """Zero logits on a 2 x 2 binary image: 4 ln 2 nats per image (a sum, not a mean)."""
    from benchmarks.pytorch_generative import logits_nll

    x = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]], [[[0.0, 0.0], [0.0, 1.0]]]])
    zero = torch.nn.Module()
    zero.forward = lambda x: torch.zeros_like(x)
    assert torch.allclose(logits_nll(zero, x), torch.full((2,), 4 * math.log(2)))


def test_check_cell_says_what_was_checked() -> None:
    assert sampling.check_cell({"valid": True, "copied": True, "same_pixels": True}) == (
        "same pixels from the same seed (weights copied)"
    )
    assert "no weights copied" in sampling.check_cell({"valid": True, "copied": False})
    assert sampling.check_cell({"valid": False, "copied": False}).startswith("NOT")


def test_table_rows_carry_the_sampling_cells() -> None:
    per_seed = [{"dgm": {"nll": 90.0, "ms_per_step": 1.0, "params": 10}} for _ in range(2)]
    row = {"model": "NADE, 500 hidden units", "steps": 5, "difference": "d", "per_seed": per_seed}
    sampled = {
        **row,
        "sampling": {
            "batch_size": 16,
            "weights": "untrained",
            "per_seed": [_seed(2.0), _seed(4.0)],
            **sampling.summarise([_seed(2.0), _seed(4.0)], bench.interval),
        },
    }
    record = {
        "peer": "p",
        "peer_commit": "c",
        "data": "d",
        "batch_size": 64,
        "lr": 1e-3,
        "threads": 1,
        "seeds": [0, 1],
        "test_images": 10,
        "rows": [row, sampled],
    }
    lines = bench.table(record)
    header = next(line for line in lines if line.startswith("| model"))
    rows = [line for line in lines if line.startswith("| NADE")]
    assert all(line.count("|") == header.count("|") for line in rows)
    assert rows[0].endswith("| – | – | – |")
    assert "| 1 / 3 | 3.00 ± 12.71 | same pixels from the same seed (weights copied) |" in rows[1]
    assert any(line.startswith("Sampling: 16 images per call") for line in lines)
    assert bench.sampling_reading(sampled["sampling"]) == (  # 3.00 ± 12.71 holds 1
        "samples as fast as (peer ÷ dgm 3.00 ± 12.71) the peer's `sample` (same pixels, "
        "weights copied)"
    )


def test_sampling_reading_says_faster_or_slower_only_beyond_the_interval() -> None:
    def reading(speedups: list[float], copied: bool = True) -> str:
        seeds = [_seed(s) for s in speedups]
        for s in seeds:
            s["copied"] = copied
        return bench.sampling_reading(sampling.summarise(seeds, bench.interval))

    assert reading([2.0, 2.1, 2.2]) == (
        "samples 2.1× faster than the peer's `sample` (same pixels, weights copied)"
    )
    assert reading([0.5, 0.5, 0.5], copied=False) == "samples 2.0× slower than the peer's `sample`"


def test_residual_once_runs_the_peers_layers_adding_each_residual_once() -> None:
    from torch import nn

    class Block(nn.Module):  # the peer's block: returns x + net(x)
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.net(x)

    class Published(nn.Module):  # the peer's forward: x = x + layer(x)
        def __init__(self, blocks: int) -> None:
            super().__init__()
            self._input, self._head = nn.Linear(3, 4), nn.Linear(4, 2)
            self._causal_layers = nn.ModuleList(Block() for _ in range(blocks))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self._input(x)
            for layer in self._causal_layers:
                x = x + layer(x)
            return self._head(x)

    torch.manual_seed(0)
    published = Published(3)
    torch.manual_seed(0)
    fixed = residual_once(Published)(3)
    assert isinstance(fixed, Published)
    assert all(
        torch.equal(a, b)
        for a, b in zip(published.state_dict().values(), fixed.state_dict().values(), strict=True)
    )
    x = torch.randn(5, 3, dtype=torch.float64)
    published.double(), fixed.double()
    h = published._input(x)
    for block in published._causal_layers:
        h = h + block.net(h)  # a residual network: each block adds its residual once
    torch.testing.assert_close(fixed(x), published._head(h), rtol=0, atol=0)
    assert not torch.allclose(published(x), fixed(x))


def test_peer_row_names_the_change_made_to_the_peer() -> None:
    per_seed = [
        {
            "dgm": {"nll": 90.0 + s, "ms_per_step": 1.0},
            bench.PEER: {"nll": 91.0, "ms_per_step": 2.0},
        }
        for s in range(2)
    ]
    rows = []
    for label in (
        "PixelCNN, ~53k parameters",
        "PixelCNN, ~53k parameters, peer's residual added once",
    ):
        pair = bench.PAIRS_BY_LABEL[label]
        rows.append(
            {
                "model": label,
                "dgm_model": "pixelcnn",
                "steps": 1000,
                "per_seed": per_seed,
                **bench.summarise(per_seed, list(pair.variants)),
            }
        )
    record = {
        "peer": "p",
        "peer_commit": "c",
        "data": "d",
        "test_images": 10,
        "batch_size": 64,
        "lr": 1e-3,
        "rows": rows,
    }
    published, fixed = bench.peer_rows(record)
    assert published.peer == "p (c)" and published.difference == "– (see reading)"
    assert fixed.peer == "p (c), residual added once"
    assert fixed.difference != "– (see reading)" and "NLL" in fixed.reading
