"""Classification accuracy score (CAS): train a classifier on a class-conditional model's
samples only, and score it on the real test set.

A model whose samples of class y cover what real examples of y look like gives a
classifier as good as one trained on real data; samples that are sharp but lack diversity
(mode collapse, too low a temperature) give a low CAS even where their FD is low, because
the classifier never sees the variety of the real test examples (Ravuri & Vinyals 2019).
Beside CAS this module reports the same classifier trained on the real training examples
(the reference) and on real + synthetic examples (augmentation).

The classifier is one fixed choice: dgm's discriminative baseline, scikit-learn's L2
multinomial logistic regression on the flattened values mapped to [0, 1]
(``dgm.tasks.classify.logistic_regression_accuracy``). It is deterministic, works on any
data shape (images and vectors alike) and has no training budget to tune, so differences
in CAS come from the samples alone. Its absolute accuracies sit below a CNN's (about 84 %
on Fashion-MNIST against 91 %); the gap between CAS and the real accuracy is the measure.

References:
    Ravuri & Vinyals 2019, Classification Accuracy Score for Conditional Generative
    Models, NeurIPS, arXiv:1905.10887.

Example:
    >>> import torch
    >>> chance_accuracy(torch.tensor([0, 0, 0, 1]))
    0.75
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from dgm.capabilities import class_conditional_models
from dgm.evaluate.features import to_unit_range
from dgm.evaluate.sample_quality import draw
from dgm.model import GenerativeModel
from dgm.tasks.classify import logistic_regression_accuracy

CLASSIFIER = "logistic regression (scikit-learn, L2, C = 1) on values in [0, 1]"


@dataclass
class CasOptions:
    """How ``classification_accuracy_score`` draws its synthetic training set."""

    n: int | None = None  # synthetic training examples; none: as many as the real train split
    seed: int = 0  # seeds the draws, the labels drawn for and the real subset
    batch_size: int = 500  # samples drawn at a time


def check_class_conditional(model: GenerativeModel, name: str = "") -> None:
    """Refuse a model that does not take class labels, naming the registered models that
    can (those with a ``num_classes`` option)."""
    if model.conditioning.kind == "classes":
        return
    who = name or type(model).__name__
    raise ValueError(
        f"{who} is not class-conditional, so it cannot draw a labelled training set; "
        f"CAS needs one of {', '.join(class_conditional_models())} trained with "
        "--num-classes K on labelled data"
    )


def chance_accuracy(y: Tensor) -> float:
    """Accuracy of always guessing the most common label of ``y``."""
    if len(y) == 0:
        raise ValueError("chance accuracy needs at least one label")
    return float(torch.bincount(y.long().cpu()).max()) / len(y)


def _features(x: Tensor, value_range: tuple[float, float] | None) -> Tensor:
    """Flattened values in [0, 1] (N, D), float64 on the CPU."""
    return to_unit_range(x.cpu(), value_range).flatten(1).double()


def _accuracy(x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor, seed: int) -> float:
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():  # 200 L-BFGS iterations: close enough, say nothing
        warnings.simplefilter("ignore", ConvergenceWarning)
        return logistic_regression_accuracy(x, y, x_test, y_test, seed=seed)


@torch.no_grad()
def classification_accuracy_score(
    model: GenerativeModel,
    train: Any,
    test: Any,
    options: CasOptions | None = None,
    *,
    sample_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """CAS of class-conditional ``model`` whose real data are ``train`` and ``test``
    (``TensorData`` with labels ``y`` and the same ``value_range``).

    The synthetic training set has ``options.n`` examples (default: ``len(train)``) whose
    labels are those of a seeded random subset of the real training labels (drawn with
    replacement when n exceeds them), so its class balance is the real one; the model draws
    one sample per label with ``sample_options`` (temperature, guidance scale, truncation,
    ...). The real reference is the classifier trained on the same subset of real examples.

    Returns accuracies on the real ``test`` split, as fractions: ``cas`` (trained on
    samples), ``real_accuracy`` (on real examples), ``augmented_accuracy`` (on both),
    ``chance`` (the most common test label), ``out_of_range`` (the share of sample values
    outside the data's ``value_range``: pixels no real image has, which the classifier
    and an FD then see; samples are never clamped), with ``num_synthetic``, ``num_real``,
    ``seed`` and ``classifier`` (what was trained).
    """
    check_class_conditional(model)
    o = options or CasOptions()
    n = len(train) if o.n is None else o.n
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"the synthetic training set (--cas-n) needs >= 2 examples, got {n}")
    num_classes = model.conditioning.num_classes
    for split, data in (("train", train), ("test", test)):
        if len(data) == 0 or int(data.y.max()) >= num_classes or int(data.y.min()) < 0:
            raise ValueError(
                f"the {split} labels must lie in 0..{num_classes - 1}, the model's classes: "
                "evaluate the model on the labelled data it was trained on"
            )
    pick = torch.Generator().manual_seed(o.seed)
    if n <= len(train):
        index = torch.randperm(len(train), generator=pick)[:n]
        real_index = index
    else:
        index = torch.randint(len(train), (n,), generator=pick)
        real_index = torch.arange(len(train))
    labels = train.y[index].long()  # (n,): the real class balance
    value_range = getattr(train, "value_range", None)
    model.eval()
    gen = torch.Generator(model.device).manual_seed(o.seed)
    drawn = draw(
        model,
        n,
        labels.to(model.device),
        batch_size=o.batch_size,
        generator=gen,
        options=sample_options,
    )
    x_fake = _features(drawn, value_range)
    outside = float(((x_fake < 0) | (x_fake > 1)).double().mean())  # beyond the data's range
    if not torch.isfinite(x_fake).all():
        raise ValueError("the model drew non-finite samples: no classifier can train on them")
    x_real, y_real = _features(train.x[real_index], value_range), train.y[real_index].long()
    x_test, y_test = _features(test.x, value_range), test.y.long()
    if len(torch.unique(labels)) < 2:
        raise ValueError("the synthetic labels hold one class: give --cas-n a larger value")
    return {
        "cas": _accuracy(x_fake, labels, x_test, y_test, o.seed),
        "real_accuracy": _accuracy(x_real, y_real, x_test, y_test, o.seed),
        "augmented_accuracy": _accuracy(
            torch.cat([x_real, x_fake]), torch.cat([y_real, labels]), x_test, y_test, o.seed
        ),
        "chance": chance_accuracy(y_test),
        "out_of_range": outside,
        "num_synthetic": n,
        "num_real": len(real_index),
        "num_test": len(test),
        "classifier": CLASSIFIER,
        "options": asdict(o),
    }


def cas_lines(result: dict[str, Any]) -> list[str]:
    """The CAS result as lines to print, accuracies in per cent."""
    lines = [f"classification accuracy score, {result['classifier']}:"]
    for key, what in (
        ("cas", f"trained on {result['num_synthetic']} samples (CAS)"),
        ("real_accuracy", f"trained on {result['num_real']} real examples"),
        ("augmented_accuracy", "trained on both"),
        ("chance", "chance (most common test class)"),
    ):
        lines.append(f"{100 * result[key]:8.2f} %  {what}")
    if result.get("out_of_range", 0) > 0:
        lines.append(
            f"{100 * result['out_of_range']:8.2f} %  of the sample values lie outside the "
            "data's range, unclamped (a DDPM on real x: train it on --scale byte)"
        )
    return lines


__all__ = [
    "CLASSIFIER",
    "CasOptions",
    "cas_lines",
    "chance_accuracy",
    "check_class_conditional",
    "classification_accuracy_score",
]
