"""benchmarks/pixelcnn.py's sampling rows: the naive loop stopped after a prefix of rows
draws what the whole loop and the fast sampler draw there, after exactly one network pass
per pixel of the prefix; the extrapolation scales by height / rows; a row measured on a
prefix says so in the table."""

import pytest
import torch
from benchmarks import pixelcnn as bench

import dgm


@pytest.mark.parametrize("variant", ["plain", "gated"])
def test_naive_prefix_draws_the_first_rows_of_both_samplers(variant: str) -> None:
    torch.manual_seed(0)
    model = dgm.create(
        "pixelcnn", (1, 7, 6), variant=variant, hidden_channels=8, num_layers=3
    ).eval()
    prefix, passes = bench.naive_prefix(model, 5, 3, torch.Generator().manual_seed(4))
    naive = model.sample(5, generator=torch.Generator().manual_seed(4), fast=False)
    fast = model.sample(5, generator=torch.Generator().manual_seed(4))
    assert passes == 3 * 6  # one full pass per pixel of the 3 rows, none after them
    assert prefix.shape == (5, 1, 3, 6)
    assert torch.equal(prefix, naive[:, :, :3])
    assert torch.equal(prefix, fast[:, :, :3])
    other, _ = bench.naive_prefix(model, 5, 3, torch.Generator().manual_seed(5))
    assert not torch.equal(other, prefix)  # the comparison can fail


def test_naive_prefix_of_every_row_is_the_whole_sample() -> None:
    torch.manual_seed(0)
    model = dgm.create("pixelcnn", (1, 4, 4), hidden_channels=4, num_layers=2).eval()
    prefix, passes = bench.naive_prefix(model, 2, 4, torch.Generator().manual_seed(1))
    naive = model.sample(2, generator=torch.Generator().manual_seed(1), fast=False)
    assert passes == 16 and torch.equal(prefix, naive)


def test_extrapolation_scales_by_height_over_rows() -> None:
    assert bench.extrapolate_naive(300.0, 3, 32) == pytest.approx(3200.0)
    assert bench.extrapolate_naive(50.0, 28, 28) == 50.0  # the whole image: as measured
    with pytest.raises(ValueError, match=r"rows must be in 1\.\.32"):
        bench.extrapolate_naive(1.0, 0, 32)
    with pytest.raises(ValueError, match=r"rows must be in 1\.\.32"):
        bench.extrapolate_naive(1.0, 33, 32)


def _row(**changes: object) -> dict:
    row = {
        "variant": "gated",
        "image": [1, 32, 32],
        "batch_size": 4,
        "ms": {"fast": 20_000.0, "naive": 900_000.0},
        "cpu_ms": {"fast": 10_000.0, "naive": 400_000.0},
        "naive_rows": 3,
        "ratio_naive_over_fast": 40.0,
        "ratio_min": 35.0,
        "ratio_max": 45.0,
        "same_pixels": True,
    }
    return {**row, **changes}


def test_a_prefix_row_is_marked_extrapolated_and_reads_cpu_time() -> None:
    cells = bench.speed_cells(_row())
    assert cells[3] == "CPU"
    assert cells[4] == "10000" and cells[5] == "400000 (extrapolated from 3 rows)"
    assert cells[7] == "yes (first 3 rows)"


def test_a_row_saved_before_cpu_time_reads_wall_time_unmarked() -> None:
    old = _row()
    del old["cpu_ms"], old["naive_rows"]
    cells = bench.speed_cells(old)
    assert cells[3] == "wall"
    assert cells[4] == "20000" and cells[5] == "900000"
    assert cells[7] == "yes"
    assert bench.speed_cells(_row(same_pixels=False, naive_rows=32))[7] == "NO"
