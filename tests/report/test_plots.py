"""Sample grids: drawn on the data's own range, clipped, never rescaled by a guess."""

import json

import numpy as np
import pytest
import torch

from dgm.report.plots import image_grid, save_samples


def grey(img) -> np.ndarray:
    return np.asarray(img, dtype=np.float64)


def test_values_slightly_outside_the_range_are_clipped_not_rescaled():
    x = torch.full((4, 1, 8, 8), 0.5)
    baseline = grey(image_grid(x, value_range=(0.0, 1.0)))
    x[0, 0, 0, 0] = 1.02  # one stray pixel of an untrained Gaussian decoder
    x[1, 0, 0, 0] = -0.03
    img = grey(image_grid(x, value_range=(0.0, 1.0)))
    assert np.median(img) == pytest.approx(128, abs=1)  # the grid stays mid-grey
    assert (img == baseline).mean() > 0.99 and img.max() == 255 and img.min() == 0
    assert np.median(grey(image_grid(x))) == pytest.approx(128, abs=1)  # floats: [0, 1]


def test_byte_images_and_explicit_ranges():
    x = torch.full((2, 1, 4, 4), 128, dtype=torch.long)
    assert np.median(grey(image_grid(x))) == pytest.approx(128, abs=1)  # integers: 0..255
    y = torch.full((2, 3, 4, 4), 0.0)  # RGB on [-1, 1]: 0 is mid-grey
    img = grey(image_grid(y, value_range=(-1.0, 1.0)))
    assert img.shape[-1] == 3 and np.median(img) == pytest.approx(128, abs=1)
    levels = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1, 1).expand(3, 1, 4, 4)
    row = grey(image_grid(levels, nrow=3, pad=0, value_range=(-1.0, 1.0)))  # no grey padding
    assert sorted(set(row.flatten().tolist())) == [0, 128, 255]  # low, middle, high
    with pytest.raises(ValueError, match="low < high"):
        image_grid(y, value_range=(1.0, 1.0))


def test_save_samples_uses_the_range_it_is_given(tmp_path):
    from PIL import Image

    x = torch.full((4, 1, 8, 8), 127.5)
    assert save_samples(x, tmp_path / "a.png", value_range=[0, 255])
    assert np.median(grey(Image.open(tmp_path / "a.png"))) == pytest.approx(128, abs=1)


# -- 2-D samples and training curves (matplotlib) ----------------------------------------------


def _blues(img) -> int:
    """Pixels of the density's filled contours (matplotlib's Blues, beyond its palest)."""
    rgb = np.asarray(img, dtype=np.int64)
    return int(((rgb[..., 2] - rgb[..., 0] > 40) & (rgb[..., 2] > 100)).sum())


def test_2d_samples_are_drawn_over_the_data_and_the_density_when_there_is_one():
    from dgm.report.plots import scatter
    from helpers import DiagonalGaussian, GaussianConfig, ToyGAN, ToyGANConfig

    x, data = torch.randn(300, 2), torch.randn(1000, 2) * 2
    with_density = scatter(x, data=data, model=DiagonalGaussian((2,), GaussianConfig()))
    no_likelihood = scatter(x, data=data, model=ToyGAN((2,), ToyGANConfig()))
    bare = scatter(x)
    assert with_density.size == no_likelihood.size == bare.size == (384, 384)
    assert _blues(with_density) > 10_000  # filled contours under the points
    assert _blues(no_likelihood) < 500 and _blues(bare) < 500  # likelihood NONE: no contours
    grey_points = (np.abs(grey(no_likelihood) - 140).max(axis=-1) < 8).sum()
    assert grey_points > 300 > (np.abs(grey(bare) - 140).max(axis=-1) < 8).sum()


def test_the_suffix_picks_the_format_and_an_unknown_one_is_refused(tmp_path):
    from PIL import Image

    from dgm.report.plots import picture_format

    x = torch.rand(4, 1, 8, 8)
    for name, fmt in (("a.png", "PNG"), ("a.JPG", "JPEG"), ("a.webp", "WEBP"), ("a.bmp", "BMP")):
        assert picture_format(name) == fmt
        assert save_samples(x, tmp_path / name)
        assert Image.open(tmp_path / name).format == fmt
    for bad in ("a.xyz", "a"):
        with pytest.raises(ValueError, match=r"name a picture file ending in \.png"):
            save_samples(x, tmp_path / bad)
        assert not (tmp_path / bad).exists()


def test_training_curves_show_each_loss_and_the_validation_nll(tmp_path):
    from PIL import Image

    from dgm.report.plots import curves, save_curves

    records = [{"step": s, "loss": 10 / s, "lr": 1e-3} for s in range(10, 210, 10)]
    records += [{"step": s, "valid/nll": 1 + 5 / s, "best_step": s} for s in (100, 200)]
    img = np.asarray(curves(records), dtype=np.int64)
    assert img.shape == (400, 640, 3)

    def has(rgb) -> bool:
        return bool((np.abs(img - np.array(rgb)).max(axis=-1) <= 12).sum() > 20)

    assert has((31, 119, 180)) and has((255, 127, 14))  # train loss (C0), valid NLL (C1)
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records[:20]))
    save_curves(metrics, tmp_path / "curves.png")
    assert Image.open(tmp_path / "curves.png").size == (640, 400)


def test_compared_runs_get_a_colour_each():
    """Three runs overlaid: their curves in matplotlib's C0, C1 and C2 (blue, orange,
    green), on both panels."""
    from dgm.report.plots import overlaid_curves

    runs = []
    for i in range(3):
        records = [{"step": s, "loss": (i + 1) * 10 / s} for s in range(10, 210, 10)]
        records += [{"step": s, "valid/nll": i + 5 / s} for s in (100, 200)]
        runs.append((f"run{i}", records))
    img = np.asarray(overlaid_curves(runs), dtype=np.int64)

    def pixels(rgb, half) -> int:
        part = img[:, :480] if half == 0 else img[:, 480:]
        return int((np.abs(part - np.array(rgb)).max(axis=-1) <= 12).sum())

    for rgb in ((31, 119, 180), (255, 127, 14), (44, 160, 44)):
        assert pixels(rgb, 0) > 20 and pixels(rgb, 1) > 20, rgb


def test_curve_series():
    from dgm.report.plots import curve_series

    records = [{"step": 1, "d/loss": 2.0, "g/loss": 1.0, "valid/d/loss": 5.0}, {"step": 2}]
    assert curve_series(records) == {"d/loss": [(1, 2.0)], "g/loss": [(1, 1.0)]}
