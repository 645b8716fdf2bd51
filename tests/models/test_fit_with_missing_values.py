"""Closed-form fits on training data with missing values (NaN): the fitted parameters are
the statistics of the observed entries only, checked against counts computed here. A NaN
counted as 0 (or as a feature value) shifts p(x = 1 | y) by the missing fraction; the
models that cannot fit with NaN (EM, KDE) refuse it in words."""

import math

import pytest
import torch

import dgm


def labelled_with_missing(n: int, probs: torch.Tensor, missing: float, g: torch.Generator):
    """x (n, D) with x_d ~ Bernoulli(probs[y, d]) for y uniform over K classes, each entry
    NaN with probability ``missing``; returns (x with NaN, labels, observed mask)."""
    K, D = probs.shape
    y = torch.randint(K, (n,), generator=g)
    x = torch.bernoulli(probs[y], generator=g)
    observed = torch.rand(n, D, generator=g) >= missing
    return torch.where(observed, x, math.nan), y, observed


def test_bernoulli_naive_bayes_counts_observed_entries_only():
    """p(x_d = 1 | y) = (ones + α) / (observed + 2α) over the observed entries of class y,
    and p(y) counts every example, at 30 % missing; the truth .2/.5/.8 is recovered."""
    g = torch.Generator().manual_seed(0)
    truth = torch.tensor([[0.2, 0.5, 0.8], [0.8, 0.5, 0.2]], dtype=torch.float64)
    x, y, observed = labelled_with_missing(6000, truth, 0.3, g)
    model = dgm.create("naive_bayes", (3,), num_classes=2, alpha=1.0).double()
    model.fit_step([(x[:2500], y[:2500]), (x[2500:], y[2500:])])  # two batches: sums add up
    fitted = model.log_probs.exp()[..., 1]  # (K, D): p(x_d = 1 | y)
    for k in range(2):
        rows = y == k
        ones = torch.nan_to_num(x[rows], nan=0.0).sum(0)
        seen = observed[rows].sum(0)
        torch.testing.assert_close(fitted[k], (ones + 1) / (seen + 2))
        assert (fitted[k] - truth[k]).abs().max() < 0.04
    counts = torch.bincount(y, minlength=2).double()
    torch.testing.assert_close(model.log_prior.exp(), (counts + 1) / (len(y) + 2))


def test_gaussian_naive_bayes_means_and_variances_use_observed_entries_only():
    """Per-class mean and variance (1/n) of the observed entries of each feature, at 30 %
    missing."""
    g = torch.Generator().manual_seed(1)
    n, centres = 4000, torch.tensor([[-2.0, 1.0], [3.0, 0.5]], dtype=torch.float64)
    y = torch.randint(2, (n,), generator=g)
    x = centres[y] + torch.randn(n, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0])
    observed = torch.rand(n, 2, generator=g) >= 0.3
    model = dgm.create("naive_bayes", (2,), num_classes=2, feature="gaussian").double()
    model.fit_step([(torch.where(observed, x, math.nan), y)])
    for k in range(2):
        for d in range(2):
            v = x[(y == k) & observed[:, d], d]
            torch.testing.assert_close(model.means[k, d], v.mean())
            torch.testing.assert_close(
                model.variances[k, d], v.var(correction=0), rtol=1e-6, atol=1e-6
            )


def test_a_feature_a_class_never_observes_falls_back_to_its_overall_statistics():
    """Feature 1 is missing in every example of class 0: that class gets the feature's mean
    and variance over all observed examples (of any class), not 0 and nothing."""
    g = torch.Generator().manual_seed(2)
    n = 600
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g, dtype=torch.float64) * 2 + 5
    x[y == 0, 1] = math.nan
    model = dgm.create("naive_bayes", (2,), num_classes=2, feature="gaussian").double()
    model.fit_step([(x, y)])
    seen = x[y == 1, 1]
    torch.testing.assert_close(model.means[0, 1], seen.mean())
    torch.testing.assert_close(model.variances[0, 1], seen.var(correction=0), rtol=1e-6, atol=0)
    torch.testing.assert_close(model.means[1, 1], seen.mean())  # the class that saw it


def test_categorical_naive_bayes_counts_observed_entries_only():
    """Integer features have no NaN: the fit with everything observed is the counts, and a
    completion draws from them (missing values enter categorical data as a mask only)."""
    g = torch.Generator().manual_seed(2)
    y = torch.randint(2, (3000,), generator=g)
    x = torch.randint(3, (3000, 2), generator=g)
    x[y == 1, 0] = 2  # class 1 always has feature 0 = 2
    model = dgm.create(
        "naive_bayes", (2,), num_classes=2, feature="categorical", num_categories=3
    ).double()
    model.fit_step([(x, y)])
    for k in range(2):
        counts = torch.stack([torch.bincount(x[y == k, d], minlength=3) for d in range(2)])
        expected = (counts + 1.0) / (counts.sum(-1, keepdim=True) + 3)
        torch.testing.assert_close(model.log_probs[k].exp(), expected.double())


@pytest.mark.parametrize("name", ["gmm", "kde"])
def test_fits_that_need_complete_data_refuse_nan_in_words(name):
    model = dgm.create(name, (2,)).double()
    x = torch.randn(50, 2, dtype=torch.float64)
    x[3, 1] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit_step([(x, None)])
