"""Sample quality: FD and KID against their closed forms on Gaussians, improved precision
and recall and mode coverage on constructed cases, the feature network and its cache,
and ``sample_quality`` on models whose samples are known."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm
from torch import Tensor, nn

from dgm.data import TensorData, get
from dgm.data.toy import EightGaussians, Grid25
from dgm.evaluate import features as feat
from dgm.evaluate.features import ClassifierSettings, FeatureExtractor, FeatureNet
from dgm.evaluate.sample_quality import (
    Identity,
    data_kind,
    feature_distances,
    mode_coverage,
    precision_recall,
    sample_quality,
)
from dgm.model import ClassConditional, ContextConditional, GenerativeModel, Likelihood

TINY = ClassifierSettings(steps=150, batch_size=64)  # a few hundred digits, ~1 s


def gaussians(n: int, mean: list[float], cov: np.ndarray, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(torch.tensor(cov))
    return (
        torch.tensor(mean, dtype=torch.float64)
        + torch.randn(n, len(mean), generator=g, dtype=torch.float64) @ chol.T
    )  # (n, d)


def test_fd_equals_the_frechet_distance_of_two_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -0.5]), np.array([1.0, 0.0, 0.5])
    cov1 = np.array([[1.0, 0.3, 0.0], [0.3, 0.8, 0.1], [0.0, 0.1, 0.5]])
    cov2 = np.array([[0.6, -0.2, 0.0], [-0.2, 1.2, 0.0], [0.0, 0.0, 0.9]])
    exact = ((mu1 - mu2) ** 2).sum() + np.trace(cov1 + cov2 - 2 * sqrtm(cov1 @ cov2).real)
    n = 20_000
    a, b = gaussians(n, mu1.tolist(), cov1, 1), gaussians(n, mu2.tolist(), cov2, 2)
    fd = feature_distances(a, b, Identity(3), batch_size=5000, kid_subsets=2)["fd"]
    # the mean term dominates the sampling error: 2 (mu1 - mu2)^T (eps1 - eps2)
    se = 2 * math.sqrt((mu1 - mu2) @ (cov1 + cov2) @ (mu1 - mu2) / n)
    assert abs(fd - exact) < 4 * se
    same = feature_distances(a[: n // 2], a[n // 2 :], Identity(3), kid_subsets=2)["fd"]
    assert 0 <= same < 0.01


def poly_kernel_mean(a: Tensor, b: Tensor, s: float, t: float, d: int) -> float:
    """E (x^T y / d + 1)^3 for independent x ~ N(a, s^2 I), y ~ N(b, t^2 I): the cumulants
    of x^T y add over coordinates, and its raw moments follow from them."""
    m = [1.0, 0, 0, 0]
    k1 = k2 = k3 = 0.0
    for ai, bi in zip(a.tolist(), b.tolist(), strict=True):
        mx = [1, ai, ai**2 + s**2, ai**3 + 3 * ai * s**2]
        my = [1, bi, bi**2 + t**2, bi**3 + 3 * bi * t**2]
        m = [mx[j] * my[j] for j in range(4)]  # raw moments of x_i y_i
        k1 += m[1]
        k2 += m[2] - m[1] ** 2
        k3 += m[3] - 3 * m[2] * m[1] + 2 * m[1] ** 3
    e1, e2, e3 = k1, k2 + k1**2, k3 + 3 * k2 * k1 + k1**3
    g = 1 / d
    return g**3 * e3 + 3 * g**2 * e2 + 3 * g * e1 + 1


def test_kid_is_zero_for_one_distribution_and_the_cubic_kernel_mmd_for_a_shift():
    d, n, size = 2, 2000, 500
    mu_a, mu_b = torch.zeros(d, dtype=torch.float64), torch.tensor([1.0, 0.5], dtype=torch.float64)
    a, a2 = gaussians(n, mu_a.tolist(), np.eye(d), 3), gaussians(n, mu_a.tolist(), np.eye(d), 4)
    b = gaussians(n, mu_b.tolist(), np.eye(d), 5)
    exact = (
        poly_kernel_mean(mu_a, mu_a, 1, 1, d)
        + poly_kernel_mean(mu_b, mu_b, 1, 1, d)
        - 2 * poly_kernel_mean(mu_a, mu_b, 1, 1, d)
    )
    kw = {"kid_subsets": 40, "kid_subset_size": size}
    same = feature_distances(a, a2, Identity(d), **kw)
    shifted = feature_distances(a, b, Identity(d), **kw)
    # each subset of 500 has std kid_std; the mean over 40 overlapping subsets of 2000
    # points is at least as precise as one estimate on 2000 points, std ~ kid_std / 2
    assert abs(same["kid"]) < 2 * same["kid_std"] / 2
    assert abs(shifted["kid"] - exact) < 3 * shifted["kid_std"] / 2
    assert exact > 10 * shifted["kid_std"] / 2  # the shift is clearly detected
    torch.manual_seed(123)  # KID's subsets come from its own seed, not the global RNG
    again = feature_distances(a, b, Identity(d), **kw)
    assert again == shifted  # the subsets are seeded
    # fewer points than the subset size: subsets of half the points still differ, so the
    # spread is an estimate, not a zero from one subset drawn 40 times
    small = feature_distances(a[:300], b[:300], Identity(d), kid_subsets=40)
    assert small["kid_std"] > 0.05 * abs(small["kid"])


def test_feature_extractor_plugs_into_torchmetrics_like_precomputed_features():
    torch.manual_seed(0)
    net = FeatureNet((1, 8, 8), num_classes=10).double().eval()
    x, y = torch.rand(64, 1, 8, 8, dtype=torch.float64), torch.rand(64, 1, 8, 8).double() ** 2
    direct = feature_distances(x, y, FeatureExtractor(net), kid_subsets=5, kid_subset_size=32)
    fx, fy = net.features(x).detach(), net.features(y).detach()
    pre = feature_distances(fx, fy, Identity(128), kid_subsets=5, kid_subset_size=32)
    assert direct["fd"] == pytest.approx(pre["fd"], rel=1e-9)
    assert direct["kid"] == pytest.approx(pre["kid"], rel=1e-9)
    with pytest.raises(ValueError, match="trained on"):
        net.features(torch.rand(2, 1, 28, 28))


def test_precision_recall_on_constructed_sets():
    toy = EightGaussians()
    g = torch.Generator().manual_seed(0)
    real = toy.sample(2000, g)
    assert precision_recall(real, real) == {"precision": 1.0, "recall": 1.0}
    assert precision_recall(real, real + 100.0) == {"precision": 0.0, "recall": 0.0}
    x, k = toy.sample_labeled(4000, g)
    half = x[k < 4][:2000]  # four of the eight modes
    pr, full = precision_recall(real, half), precision_recall(real, x[:2000])
    assert pr["precision"] > 0.97
    # half the real points lie on the missing modes; the other half are recalled as by
    # draws from every mode (a finite k-NN manifold misses a few of their tails)
    assert abs(pr["recall"] - full["recall"] / 2) < 0.05 and full["recall"] > 0.85
    with pytest.raises(ValueError, match="k must be"):
        precision_recall(real[:3], half, k=3)


def test_precision_recall_by_hand_with_balls_that_include_their_boundary():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])  # k = 1: every radius is 1
    fake = torch.tensor([[4.0], [5.0]])  # radii 1; 4 lies on the boundary of 3's ball
    # precision: 4 is within 1 of 3, 5 is 2 away from every real point; recall: only 3 is
    # within 1 of a generated point (Kynkäänniemi et al.'s f counts distance <= radius)
    assert precision_recall(real, fake, k=1) == {"precision": 0.5, "recall": 0.25}


def test_a_mode_is_captured_from_a_quarter_of_its_fair_share():
    toy = EightGaussians()
    # 800 samples: a fair share is 100 per mode, a quarter of it 25
    counts = {0: 25, 1: 24, 2: 740, 3: 0}
    points = [toy.means[m].expand(c, 2) for m, c in counts.items()]
    x = torch.cat([*points, torch.zeros(11, 2, dtype=torch.float64)])  # 11 off every mode
    out = mode_coverage(x, toy)
    assert out["modes_captured"] == 2 and out["counts"][:4] == [25, 24, 740, 0]
    assert out["high_quality"] == 789 / 800


@pytest.mark.parametrize("toy", [EightGaussians(), Grid25()], ids=["eight", "grid25"])
def test_mode_coverage_on_exact_and_half_mode_draws(toy):
    n, modes = 5000, toy.num_components
    x, k = toy.sample_labeled(2 * n, torch.Generator().manual_seed(1))
    exact = mode_coverage(x[:n], toy)
    p = 1 - math.exp(-4.5)  # P(|N(0, I_2)| <= 3) = 1 - exp(-9/2)
    assert exact["modes"] == modes and exact["modes_captured"] == modes
    assert abs(exact["high_quality"] - p) < 4 * math.sqrt(p * (1 - p) / n)
    kept = k < modes // 2  # draws from the first half of the modes only
    half = mode_coverage(x[kept][:n], toy)
    assert half["modes_captured"] == modes // 2
    assert sum(half["counts"][modes // 2 :]) == 0
    far = mode_coverage(x[:n] + 50.0, toy)  # off the mixture's support
    assert far["high_quality"] < 0.01 and far["modes_captured"] == 0
    with pytest.raises(ValueError, match="known means"):
        from dgm.data.toy import Moons

        mode_coverage(x, Moons())


@pytest.fixture(scope="module")
def digits_classifier():
    train, test = get("digits", "train"), get("digits", "test")
    return feat.train_classifier(
        train.x[:400], train.y[:400], test.x, test.y, TINY, dataset="digits"
    )


def test_tiny_classifier_learns_digits(digits_classifier):
    assert digits_classifier.test_accuracy > 0.8
    train = get("digits", "train").x[:400]  # features of unit mean square on its train set
    f = digits_classifier.net.features(train)
    assert f.shape == (400, 128) and f.square().mean().item() == pytest.approx(1, rel=1e-4)


def test_feature_classifier_is_trained_once_then_loaded_from_safetensors(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("DGM_DATA", raising=False)
    assert feat.cache_dir() == tmp_path / "xdg" / "dgm"
    assert feat.cache_dir(tmp_path / "missing") == tmp_path / "xdg" / "dgm"  # fall back
    assert feat.cache_dir(tmp_path) == tmp_path  # a writable data folder
    with monkeypatch.context() as m:  # a read-only one (/usr/share/datasets): the user cache
        m.setattr(feat.os, "access", lambda path, mode: False)
        assert feat.cache_dir(tmp_path) == tmp_path / "xdg" / "dgm"
    settings = ClassifierSettings(steps=20, batch_size=64)
    first = feat.feature_classifier("digits", settings=settings, log=False)
    assert first.path is not None and first.path.parent == tmp_path / "xdg" / "dgm"
    assert first.path.suffix == ".safetensors"
    info = json.loads(first.path.with_suffix(".json").read_text())
    assert info["test_accuracy"] == first.test_accuracy and info["dataset"] == "digits"
    again = feat.feature_classifier("digits", settings=settings, log=False)
    assert again.path == first.path and again.test_accuracy == first.test_accuracy
    for a, b in zip(first.net.state_dict().values(), again.net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = feat.feature_classifier("digits", settings=ClassifierSettings(steps=21), log=False)
    assert other.path != first.path  # other settings never reuse the cached network
    assert first.feature_space == "dgm digits features"
    assert feat.feature_space_name("fashion_mnist") == "dgm Fashion-MNIST features"
    with pytest.raises(ValueError, match="labelled images"):
        feat.feature_classifier("moons", log=False)


@dataclasses.dataclass
class ReplayOptions:
    offset: float = 0.0  # added to every sample


@dataclasses.dataclass
class ReplayConfig(ClassConditional):
    """num_classes > 0: class-conditional."""


class Replay(GenerativeModel):
    """Draws examples of a fixed pool (of class c when conditional): a model whose
    samples are the data, or a chosen part of them."""

    likelihood = Likelihood.NONE
    sample_options = ReplayOptions

    def __init__(self, pool: TensorData, config: ReplayConfig, ignore_c: bool = False) -> None:
        super().__init__(pool.event_shape, config)
        self.pool, self.ignore_c = pool, ignore_c
        self.register_buffer("anchor", torch.zeros(()))

    def sample(self, n, c=None, *, generator=None, **options) -> Tensor:
        offset = self.sample_settings(options).offset
        c = self.check_c(c, n)
        if c is None or self.ignore_c:
            index = torch.randint(len(self.pool), (n,), generator=generator)
        else:
            where = [torch.nonzero(self.pool.y == y)[:, 0] for y in c.tolist()]
            index = torch.stack(
                [w[torch.randint(len(w), (1,), generator=generator)] for w in where]
            )
            index = index[:, 0]
        return self.pool.x[index] + offset


def test_sample_quality_of_exact_and_half_mode_toy_samplers():
    data = get("eight_gaussians", "test", num_samples=1500)
    exact = Replay(get("eight_gaussians", "train", num_samples=1500), ReplayConfig())
    out = sample_quality(exact, data, num_samples=1500, kid_subsets=5)
    assert out["feature_space"] == "raw 2-D points"
    assert out["modes_captured"] == 8 and out["high_quality"] > 0.97
    # k = 3 manifolds of 1500 points miss a little of the other set's tails
    assert out["precision"] > 0.9 and out["recall"] > 0.85 and out["fd"] < 0.02
    pool = get("eight_gaussians", "train", num_samples=3000)
    half = Replay(pool.subset(torch.nonzero(pool.y < 4)[:, 0]), ReplayConfig())
    out_half = sample_quality(half, data, num_samples=1500, kid_subsets=5)
    assert out_half["modes_captured"] == 4
    assert abs(out_half["recall"] - out["recall"] / 2) < 0.06  # half the real modes missed
    assert out_half["precision"] > 0.9 and out_half["fd"] > 10 * out["fd"]
    assert sample_quality(exact, data, num_samples=1500, kid_subsets=5) == out  # seeded
    away = sample_quality(exact, data, num_samples=1500, kid_subsets=5, options={"offset": 50.0})
    assert away["modes_captured"] == 0 and away["precision"] == 0  # options reach sample()


def test_the_seed_picks_the_real_subset_too(monkeypatch):
    """Fewer samples than data: the real examples compared are a subset drawn with the
    seed (sorted), so seeds 0 and 1 compare different real points."""
    import sys

    sq = sys.modules[sample_quality.__module__]  # dgm.evaluate's sample_quality is the function

    data = get("eight_gaussians", "test", num_samples=300)
    model = Replay(get("eight_gaussians", "train", num_samples=300), ReplayConfig())
    taken, take = [], sq.take
    monkeypatch.setattr(sq, "take", lambda d, index, *a: taken.append(index) or take(d, index, *a))
    for seed in (0, 1):
        sample_quality(model, data, num_samples=100, kid_subsets=2, seed=seed)
        pick = torch.randperm(300, generator=torch.Generator().manual_seed(seed))[:100]
        assert torch.equal(taken[-1], pick.sort().values)
    assert not torch.equal(taken[0], taken[1])


def test_sample_quality_of_a_conditional_image_sampler(digits_classifier):
    data = get("digits", "test")
    good = Replay(get("digits", "train"), ReplayConfig(num_classes=10))
    out = sample_quality(good, data, num_samples=300, classifier=digits_classifier)
    assert out["feature_space"] == "dgm digits features"
    assert out["classifier_test_accuracy"] == digits_classifier.test_accuracy
    assert set(out["class_accuracy"]) == set(range(10)) and out["accuracy"] > 0.75
    assert out["precision"] > 0.6 and out["recall"] > 0.6
    blind = Replay(get("digits", "train"), ReplayConfig(num_classes=10), ignore_c=True)
    few = sample_quality(blind, data, num_samples=300, classifier=digits_classifier, classes=[1, 7])
    assert set(few["class_accuracy"]) == {1, 7} and few["accuracy"] < 0.35
    assert few["num_real"] == int(torch.isin(data.y, torch.tensor([1, 7])).sum())
    noise = Replay(TensorData(torch.rand(300, 1, 8, 8), name="digits"), ReplayConfig())
    bad = sample_quality(noise, data, num_samples=300, classifier=digits_classifier)
    assert bad["fd"] > 3 * out["fd"] and bad["precision"] < out["precision"]
    with pytest.raises(ValueError, match="classes must lie"):
        sample_quality(good, data, num_samples=10, classifier=digits_classifier, classes=[10])
    with pytest.raises(ValueError, match="class-conditional"):
        sample_quality(noise, data, num_samples=10, classifier=digits_classifier, classes=[1])


def test_byte_samples_are_scaled_like_byte_data(digits_classifier):
    """8-bit integer samples (a DDPM's on --scale byte) against 8-bit data: both mapped to
    [0, 1] from the data's value range, so a sampler of real images scores as it does on
    [0, 1] floats, and a sampler on the wrong scale (0..1 against 0..255) scores 0."""

    def to_byte(d: TensorData) -> TensorData:
        x = (d.x * 255).round().to(torch.uint8)
        return TensorData(x, d.y, name="digits", num_classes=10, value_range=(0.0, 255.0))

    train, test = get("digits", "train"), get("digits", "test")
    floats = sample_quality(
        Replay(train, ReplayConfig()), test, num_samples=300, classifier=digits_classifier
    )
    pool = to_byte(train)
    pool.x = pool.x.long()  # samples come back as int64, like DDPM's from_model_scale
    out = sample_quality(
        Replay(pool, ReplayConfig()), to_byte(test), num_samples=300, classifier=digits_classifier
    )
    assert out["precision"] > 0.6 and out["recall"] > 0.6
    assert out["precision"] == pytest.approx(floats["precision"], abs=0.05)
    assert out["recall"] == pytest.approx(floats["recall"], abs=0.05)
    assert out["fd"] == pytest.approx(floats["fd"], rel=0.1, abs=0.5)
    wrong = Replay(train, ReplayConfig())  # [0, 1] samples read as 0..255: near-black images
    bad = sample_quality(wrong, to_byte(test), num_samples=300, classifier=digits_classifier)
    assert bad["precision"] < 0.05 and bad["fd"] > 3 * out["fd"]


@dataclasses.dataclass
class UpsampleConfig(ContextConditional):
    context_shape: tuple[int, ...] = (1, 4, 4)  # the 2x average-pooled 8x8 digit


class Upsample(GenerativeModel):
    """Super-resolution by nearest-neighbour upsampling of the context: samples follow c."""

    likelihood = Likelihood.NONE

    def sample(self, n, c=None, *, generator=None, **options) -> Tensor:
        c = self.check_c(c, n)
        return nn.functional.interpolate(c, scale_factor=2.0)  # (n, 1, 8, 8)


def test_a_context_conditional_model_draws_for_the_real_examples_contexts(digits_classifier):
    data = get("digits", "test", condition="lowres", lowres_factor=2)
    model = Upsample((1, 8, 8), UpsampleConfig())
    out = sample_quality(model, data, num_samples=200, classifier=digits_classifier)
    blurred = nn.functional.interpolate(nn.functional.avg_pool2d(data.x, 2), scale_factor=2.0)
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:200]
    index = pick.sort().values  # the examples sample_quality compares with, and their c
    f = digits_classifier.extractor
    by_hand = feature_distances(
        f(data.x[index]).double(), f(blurred[index]).double(), Identity(128)
    )
    assert out["num_real"] == 200
    assert out["fd"] == pytest.approx(by_hand["fd"], rel=1e-6)  # the same 200 contexts


def test_wrong_inputs_name_the_fix():
    assert data_kind((1, 28, 28)) == "image" and data_kind((2,)) == "points"
    with pytest.raises(ValueError, match=r"text or token sequences.*image dataset"):
        data_kind((16,), integer=True)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        data_kind((5,))
    model = Replay(get("moons", "test", num_samples=10), ReplayConfig())
    with pytest.raises(ValueError, match="num_samples"):
        sample_quality(model, get("moons", "test", num_samples=10), num_samples=0)
    with pytest.raises(ValueError, match="at least 2"):
        feature_distances(torch.zeros(1, 2), torch.zeros(5, 2), Identity(2))
    assert isinstance(Identity(3), nn.Module)


def test_the_cache_folder_prefers_root_then_dgm_data_then_xdg(tmp_path, monkeypatch):
    root, data, xdg = (tmp_path / name for name in ("root", "data", "xdg"))
    root.mkdir(), data.mkdir()
    monkeypatch.setenv("DGM_DATA", str(data))
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    assert feat.cache_dir(root) == root and feat.cache_dir(None) == data
    assert feat.cache_dir(tmp_path / "missing") == data  # not a folder: the next choice
    monkeypatch.delenv("DGM_DATA")
    assert feat.cache_dir(None) == xdg / "dgm"


def test_the_cached_network_is_keyed_by_the_labels_too():
    """Same images, other labels: another classifier, so another cache file."""
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    settings = ClassifierSettings()
    assert feat._digest(x, y, settings) == feat._digest(x.clone(), y.clone(), settings)
    assert feat._digest(x, y, settings) != feat._digest(x, 1 - y, settings)
    assert feat._digest(x, y, settings) != feat._digest(x + 0.5, y, settings)
