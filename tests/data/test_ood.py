"""The out-of-distribution image sets: Fashion-MNIST's layout, ranges, labels, splits and
determinism."""

import pytest
import torch

from dgm.data import get

NAMES = ("mnist_subset", "digits28", "uniform_noise")


@pytest.mark.parametrize("name", NAMES)
def test_layout_and_range_match_fashion_mnist(name):
    d = get(name, "test")
    assert d.x.shape[1:] == (1, 28, 28) and d.x.dtype == torch.float32
    assert d.x.min() >= 0 and d.x.max() <= 1 and d.x.max() > 0.9
    assert d.y.dtype == torch.long and len(d.y) == len(d.x)
    assert d.value_range == (0.0, 1.0)
    b = get(name, "test", scale="byte")
    assert b.x.dtype == torch.uint8 and int(b.x.max()) <= 255
    torch.testing.assert_close(b.x.float() / 255, d.x, atol=0.5 / 255 + 1e-6, rtol=0)
    s = get(name, "test", binarize="static")
    assert set(s.x.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name", NAMES)
def test_splits_are_deterministic_and_disjoint(name):
    a, b = get(name, "test"), get(name, "test")
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    train, valid = get(name, "train"), get(name, "valid")
    flat = [d.x.flatten(1) for d in (train, valid, a)]
    assert not (torch.cdist(flat[0][:50], flat[2]) == 0).any()  # no test image in train
    assert not (torch.cdist(flat[1][:50], flat[2]) == 0).any()


@pytest.mark.parametrize("name", ["mnist_subset", "digits28"])  # noise: each split by seed
def test_the_test_split_is_fixed_whatever_the_seed(name):
    """The seed divides train from valid; the test split stays the same images."""
    a, again = get(name, "test"), get(name, "test", seed=1)
    assert torch.equal(again.x, a.x) and torch.equal(again.y, a.y)
    assert not torch.equal(get(name, "valid", seed=1).x, get(name, "valid").x)


def test_mnist_subset_sizes_and_labels():
    sizes = [len(get("mnist_subset", s)) for s in ("train", "valid", "test")]
    assert sum(sizes) == 5000 and sizes[2] == 1000
    y = get("mnist_subset", "test").y
    assert set(y.tolist()) == set(range(10))


def test_digits28_is_the_upscaled_digits():
    small, big = get("digits", "test"), get("digits28", "test")
    assert torch.equal(small.y, big.y)
    pooled = torch.nn.functional.adaptive_avg_pool2d(big.x, 8)  # back to 8x8
    assert torch.corrcoef(torch.stack([pooled.flatten(), small.x.flatten()]))[0, 1] > 0.95
    # exactly: digits' [0, 1] pixels (0..16 / 16) upscaled bilinearly, on the same scale
    up = torch.nn.functional.interpolate(small.x, size=(28, 28), mode="bilinear")
    assert torch.allclose(big.x, up.clamp(0, 1), atol=1e-6, rtol=0)


def test_uniform_noise_is_uniform_and_sized_by_num_samples():
    d = get("uniform_noise", "train", num_samples=50)
    assert len(d) == 50 and (d.y == 0).all()
    assert abs(d.x.mean().item() - 0.5) < 0.01 and abs(d.x.var().item() - 1 / 12) < 0.005
    assert not torch.equal(d.x, get("uniform_noise", "valid", num_samples=50).x)
    assert not torch.equal(d.x, get("uniform_noise", "train", num_samples=50, seed=1).x)
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        get("uniform_noise", "test", num_samples=0)
