"""Classification accuracy score: a model whose samples are real examples of the asked
class scores what real data score; one that ignores the class scores chance; one that
swaps the classes scores below chance; a model without class labels is refused."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor

from dgm.data import DataConfig
from dgm.data.dataset import get
from dgm.model import ClassConditional, GenerativeModel
from dgm.tasks.cas import CasOptions, cas_lines, classification_accuracy_score


@dataclasses.dataclass
class ReplayConfig(ClassConditional):
    num_classes: int = 10  # classes the "model" draws for
    shift: int = 0  # returns examples of class (c + shift) % K
    ignore_class: bool = False  # returns examples of a random class


class Replay(GenerativeModel):
    """A "model" whose samples are real training examples of the requested class (or of
    the wrong one): its samples are exactly as diverse as the real data."""

    def __init__(self, x: Tensor, y: Tensor, config: ReplayConfig) -> None:
        super().__init__(x.shape[1:], config)
        self.register_buffer("x", x)
        self.register_buffer("y", y)

    def sample(self, n: int, c: Tensor | None = None, *, generator=None, **options) -> Tensor:
        k = self.config.num_classes
        if self.config.ignore_class:
            c = torch.randint(k, (n,), generator=generator)
        target = (c + self.config.shift) % k
        out = torch.empty(n, *self.event_shape)
        for cls in target.unique():
            where = (target == cls).nonzero().squeeze(1)
            pool = (self.y == cls).nonzero().squeeze(1)
            pick = pool[torch.randint(len(pool), (len(where),), generator=generator)]
            out[where] = self.x[pick]
        return out


@pytest.fixture(scope="module")
def digits():
    return get("digits", "train"), get("digits", "test")


def test_real_examples_score_the_real_accuracy(digits) -> None:
    train, test = digits
    model = Replay(train.x, train.y, ReplayConfig())
    result = classification_accuracy_score(model, train, test, CasOptions(seed=1))
    assert result["real_accuracy"] > 0.9
    # Drawn with replacement from the same pool: within 3 points of the real accuracy
    assert abs(result["cas"] - result["real_accuracy"]) < 0.03
    assert result["augmented_accuracy"] > 0.9
    assert result["num_synthetic"] == result["num_real"] == len(train)


def test_samples_of_a_random_class_score_chance(digits) -> None:
    train, test = digits
    model = Replay(train.x, train.y, ReplayConfig(ignore_class=True))
    result = classification_accuracy_score(model, train, test, CasOptions(n=600))
    assert result["num_synthetic"] == 600 and result["num_real"] == 600
    # 10 balanced classes: chance is about 0.1; 0.1 ± 0.07 is over 5 standard errors
    assert abs(result["cas"] - 0.1) < 0.07
    assert result["real_accuracy"] > 0.85


def test_swapped_classes_score_below_chance(digits) -> None:
    train, test = digits
    model = Replay(train.x, train.y, ReplayConfig(shift=1))
    result = classification_accuracy_score(model, train, test, CasOptions(n=600))
    assert result["cas"] < 0.05 < result["chance"]


def test_label_balance_follows_the_real_training_set(digits) -> None:
    train, test = digits
    seen: list[Tensor] = []

    class Recording(Replay):
        def sample(self, n, c=None, *, generator=None, **options):
            seen.append(c.clone())
            return super().sample(n, c, generator=generator)

    model = Recording(train.x, train.y, ReplayConfig())
    classification_accuracy_score(model, train, test, CasOptions(batch_size=10_000))
    drawn = torch.bincount(torch.cat(seen), minlength=10)
    assert torch.equal(drawn, torch.bincount(train.y, minlength=10))
    # fewer samples than examples, from a train split sorted by class: a seeded random
    # subset of the labels (not the first n, all of the lowest classes)
    order = train.y.argsort(stable=True)
    by_class = train.subset(order)
    seen.clear()
    classification_accuracy_score(model, by_class, test, CasOptions(n=500, batch_size=10_000))
    drawn = torch.bincount(torch.cat(seen), minlength=10).double()
    share = torch.bincount(train.y, minlength=10).double() / len(train)
    assert ((drawn / 500 - share).abs() < 5 * (share * (1 - share) / 500).sqrt()).all(), drawn


def test_a_model_without_classes_is_refused(digits) -> None:
    train, test = digits
    model = Replay(train.x, train.y, ReplayConfig(num_classes=0))
    with pytest.raises(ValueError, match=r"not class-conditional.*vae.*--num-classes"):
        classification_accuracy_score(model, train, test)


def test_samples_outside_the_data_range_are_counted_not_clamped() -> None:
    """``out_of_range`` is the share of sample values outside the data's value range (0..255
    for 8-bit digits, not [0, 1]): 0 for real examples, that of the drawn pixels for a
    model that doubles them; the classifier sees the values as drawn."""
    view = DataConfig(name="digits", scale="byte")
    train, test = view.load("train"), view.load("test")
    lo, hi = train.value_range
    assert hi > 1  # a check against [0, 1] instead of the data's range would count wrongly
    drawn: list[Tensor] = []

    class Doubling(Replay):
        def sample(self, n, c=None, *, generator=None, **options):
            drawn.append(2 * super().sample(n, c, generator=generator))
            return drawn[-1]

    x_train = train.x.float()
    real = classification_accuracy_score(
        Replay(x_train, train.y, ReplayConfig()), train, test, CasOptions(n=300)
    )
    assert real["out_of_range"] == 0
    doubled = classification_accuracy_score(
        Doubling(x_train, train.y, ReplayConfig()), train, test, CasOptions(n=300)
    )
    x = torch.cat(drawn)
    expected = float(((x < lo) | (x > hi)).double().mean())
    assert 0.05 < expected and doubled["out_of_range"] == pytest.approx(expected)
    assert not any("outside" in line for line in cas_lines(real))
    assert f"{100 * expected:.2f} %  of the sample values lie outside" in cas_lines(doubled)[-1]


def test_every_feature_is_read_on_the_unit_scale_whatever_the_datas_scale() -> None:
    """8-bit digits score as the [0, 1] digits do: samples, real training examples and
    test examples all reach the classifier on the same scale (the default [0, 1] range
    would hide one read on its raw 0..255 scale)."""
    scores = {}
    for scale in ("unit", "byte"):
        view = DataConfig(name="digits", scale=scale)
        train, test = view.load("train"), view.load("test")
        model = Replay(train.x.float(), train.y, ReplayConfig())
        scores[scale] = classification_accuracy_score(model, train, test, CasOptions(n=300))
    assert DataConfig(name="digits", scale="byte").load("train").value_range[1] > 1
    for key in ("cas", "real_accuracy", "augmented_accuracy"):
        assert scores["byte"][key] == pytest.approx(scores["unit"][key], abs=0.02), key


def test_every_accuracy_is_the_baseline_on_values_mapped_to_0_1() -> None:
    """On 8-bit digits (values 0..255) the three classifiers see x / 255: the real accuracy
    is the library baseline on the seeded real subset divided by 255, which differs from
    the baseline on raw pixels (logistic regression's L2 penalty is not scale-free)."""
    from dgm.tasks.classify import logistic_regression_accuracy as baseline

    data = DataConfig("digits", scale="byte")
    train, test = data.load("train"), data.load("test")
    model = Replay(train.x.float(), train.y, ReplayConfig())
    result = classification_accuracy_score(model, train, test, CasOptions(n=300, seed=2))
    real = torch.randperm(len(train), generator=torch.Generator().manual_seed(2))[:300]
    x, y = train.x[real].double(), train.y[real]
    expected = baseline(x / 255, y, test.x.double() / 255, test.y, seed=2)
    assert result["real_accuracy"] == expected
    assert baseline(x, y, test.x.double(), test.y, seed=2) != expected  # the scale matters
