"""Generative classification: a class-conditional density p(x | y) and label frequencies
p(y) classify by Bayes' rule, ŷ = argmax_y log p(x | y) + log p(y).

The comparison is a discriminative model of p(y | x) on the same features, scikit-learn's
logistic regression (Ng & Jordan 2002: the generative classifier nears its asymptote
with fewer examples, the discriminative one reaches the lower asymptotic error). For
``LOWER_BOUND`` models log p(x | y) is the bound (ELBO, or IWAE_k with ``iw_samples``).

References:
    Ng & Jordan 2002, On Discriminative vs. Generative Classifiers: A Comparison of
    Logistic Regression and Naive Bayes, NeurIPS.

Example:
    >>> import torch
    >>> label_log_prior(torch.tensor([0, 0, 0, 1]), 2).exp().tolist()
    [0.75, 0.25]
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor

from dgm.config import option
from dgm.model import GenerativeModel, ImportanceWeighted, Likelihood

BATCH_SIZE = 250  # examples per forward pass (times the number of classes)


@dataclasses.dataclass
class ClassifyOptions:
    """How many examples ``dgm classify`` tests and fits on (field comments are the help)."""

    n: int = option(1000, flag="-n")  # test examples
    train_n: int = 5000  # training examples for logistic regression
    # score by IWAE_K instead of log_prob (latent models)
    iw_samples: int | None = option(None, metavar="K")


def check_classifier(model: GenerativeModel) -> None:
    """Refuse models that cannot classify by Bayes' rule: no likelihood, or no class
    labels to condition on; the message names the fix."""
    name = type(model).__name__
    if model.likelihood is Likelihood.NONE:
        raise ValueError(
            f"a generative classifier needs log p(x | y); {name} has no likelihood "
            "(likelihood = none, e.g. a GAN): train a model with a likelihood"
        )
    if model.conditioning.kind != "classes":
        raise ValueError(
            f"a generative classifier needs p(x | y); the {name} model is not "
            "class-conditional: train a class-conditional one on labelled data (--num-classes K)"
        )


def label_log_prior(y: Tensor, num_classes: int) -> Tensor:
    """log p(y) from label frequencies, (num_classes,), float64 (a class never seen gets
    −inf: it is never predicted)."""
    if len(y) == 0:
        raise ValueError("p(y) needs at least one training label")
    if bool(((y < 0) | (y >= num_classes)).any()):
        raise ValueError(f"labels lie outside 0..{num_classes - 1}")
    counts = torch.bincount(y.long().cpu(), minlength=num_classes).double()
    return (counts / counts.sum()).log()


@torch.no_grad()
def class_log_joint(
    model: GenerativeModel,
    x: Tensor,
    log_prior: Tensor,
    *,
    iw_samples: int = 0,
    batch_size: int = BATCH_SIZE,
) -> Tensor:
    """log p(x | y) + log p(y) for every class y, (batch, K), float64 on the CPU; with
    ``iw_samples`` = k > 0 an ``ImportanceWeighted`` model's IWAE_k replaces log_prob."""
    check_classifier(model)
    K = model.num_classes
    if log_prior.shape != (K,):
        raise ValueError(f"log_prior has shape {tuple(log_prior.shape)}, expected ({K},)")
    if iw_samples > 0 and not isinstance(model, ImportanceWeighted):
        raise ValueError(f"{type(model).__name__} has no importance-weighted bound: drop -k")
    rows = []
    for chunk in x.split(batch_size):
        chunk = chunk.to(model.device)
        cols = []
        for y in range(K):
            c = torch.full((len(chunk),), y, dtype=torch.long, device=model.device)
            lp = model.log_prob_iw(chunk, iw_samples, c) if iw_samples else model.log_prob(chunk, c)
            cols.append(lp.double().cpu())
        rows.append(torch.stack(cols, -1))  # (b, K)
    return torch.cat(rows) + log_prior.double()


def predict(model: GenerativeModel, x: Tensor, log_prior: Tensor, *, iw_samples: int = 0) -> Tensor:
    """ŷ = argmax_y log p(x | y) + log p(y), (batch,) long on the CPU."""
    return class_log_joint(model, x, log_prior, iw_samples=iw_samples).argmax(-1)


def posterior(model: GenerativeModel, x: Tensor, log_prior: Tensor) -> Tensor:
    """p(y | x) by Bayes' rule, (batch, K), float64."""
    return class_log_joint(model, x, log_prior).softmax(-1)


def accuracy(predicted: Tensor, y: Tensor) -> float:
    """Share of predictions equal to the labels."""
    if len(y) == 0:
        raise ValueError("accuracy needs at least one example")
    return float((predicted.cpu() == y.cpu()).double().mean())


def logistic_regression_accuracy(
    x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, *, seed: int = 0
) -> float:
    """Test accuracy of scikit-learn's (L2, C = 1) multinomial logistic regression on the
    flattened features, the discriminative baseline. Missing values (NaN) are filled
    with the training mean of their feature (0 for a feature missing in every training
    example), since logistic regression cannot marginalise them."""
    from sklearn.linear_model import LogisticRegression

    if len(torch.unique(y_train)) < 2:
        raise ValueError("logistic regression needs training labels of at least two classes")
    clf = LogisticRegression(max_iter=200, random_state=seed)
    features = [t.flatten(1).double().cpu().numpy() for t in (x_train, x_test)]
    seen = ~np.isnan(features[0])  # (N, D)
    means = np.nansum(features[0], 0) / np.maximum(seen.sum(0), 1)  # (D,): 0 if never seen
    features = [np.where(np.isnan(f), means, f) for f in features]
    clf.fit(features[0], y_train.cpu().numpy())
    return float(clf.score(features[1], y_test.cpu().numpy()))


def compare_classifiers(
    model: GenerativeModel,
    x: Tensor,
    y: Tensor,
    x_train: Tensor,
    y_train: Tensor,
    log_prior: Tensor,
    *,
    scale: float = 1.0,
    iw_samples: int | None = None,
    seed: int = 0,
) -> dict[str, float | int]:
    """The generative classifier (``predict``, by IWAE_K with ``iw_samples``) against the
    logistic-regression baseline fitted on ``x_train / scale`` (pixels on [0, 1]), both
    scored on (x, y): {"generative_accuracy", "logistic_regression_accuracy", "missing"}
    (the NaN values both saw). ``seed`` seeds the stochastic bounds and the baseline."""
    torch.manual_seed(seed)  # bounds are stochastic: make them repeatable
    predicted = predict(model, x, log_prior, iw_samples=iw_samples or 0)
    baseline = logistic_regression_accuracy(
        x_train.double() / scale, y_train, x.double() / scale, y, seed=seed
    )
    missing = sum(int(torch.isnan(t).sum()) for t in (x_train, x) if t.is_floating_point())
    return {
        "generative_accuracy": accuracy(predicted, y),
        "logistic_regression_accuracy": baseline,
        "missing": missing,
    }
