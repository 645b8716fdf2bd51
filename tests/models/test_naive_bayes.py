"""Naive Bayes against closed forms: the fit is the smoothed counts (and scikit-learn's
estimators), the posterior is Bayes' rule by enumeration, features missing at test time
give exactly the model trained without them, draws follow the fitted tables."""

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.naive_bayes import BernoulliNB, CategoricalNB, GaussianNB

import dgm

K = 3


def fitted(feature, D=4, n=300, seed=0, **config):
    """A model fitted on data with class-dependent features, and those data (x, y)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(K, (n,), generator=g)
    if feature == "gaussian":
        x = torch.randn(n, D, generator=g, dtype=torch.float64) * (1 + y[:, None]) + y[:, None]
    else:
        V = 2 if feature == "bernoulli" else config.get("num_categories", 2)
        shift = torch.arange(D) % V
        x = (y[:, None] + shift + (torch.rand(n, D, generator=g) < 0.4) * 1) % V
        x = x.double() if feature == "bernoulli" else x
    model = dgm.create("naive_bayes", (D,), num_classes=K, feature=feature, **config).double()
    model.fit_step([(x[: n // 2], y[: n // 2]), (x[n // 2 :], y[n // 2 :])])  # two batches
    return model, x, y


def every_x(model):
    V = 2 if model.config.feature == "bernoulli" else model.config.num_categories
    grid = torch.tensor(list(itertools.product(range(V), repeat=model.num_dims)))
    return grid.double() if model.config.feature == "bernoulli" else grid


@pytest.mark.parametrize("feature", ["bernoulli", "categorical"])
def test_fit_is_the_smoothed_counts(feature):
    model, x, y = fitted(feature, num_categories=3, alpha=0.5)
    V = 2 if feature == "bernoulli" else 3
    xs, ys = x.long().numpy(), y.numpy()
    for k in range(K):
        n_k = (ys == k).sum()
        prior = (n_k + 0.5) / (len(ys) + K * 0.5)
        assert math.isclose(model.log_prior[k].exp().item(), prior, rel_tol=1e-12)
        for d in range(model.num_dims):
            for v in range(V):
                theta = (((ys == k) & (xs[:, d] == v)).sum() + 0.5) / (n_k + V * 0.5)
                assert math.isclose(model.log_probs[k, d, v].exp().item(), theta, rel_tol=1e-12)


@pytest.mark.parametrize("feature", ["bernoulli", "categorical", "gaussian"])
def test_posterior_matches_scikit_learn_given_the_same_prior(feature):
    model, x, y = fitted(feature, num_categories=3)
    prior = model.log_prior.exp().numpy()
    xs, ys = x.numpy(), y.numpy()
    if feature == "bernoulli":
        ref = BernoulliNB(alpha=1.0, class_prior=prior, binarize=None)
    elif feature == "categorical":
        ref = CategoricalNB(alpha=1.0, class_prior=prior, min_categories=3)
    else:
        ref = GaussianNB(priors=prior, var_smoothing=1e-9)
    ref.fit(xs, ys)
    np.testing.assert_allclose(model.predict_proba(x).numpy(), ref.predict_proba(xs), rtol=1e-8)


@pytest.mark.parametrize("feature", ["bernoulli", "categorical"])
def test_posterior_is_bayes_rule_by_enumeration_and_densities_sum_to_one(feature):
    model, _, _ = fitted(feature, D=3, num_categories=3)
    every = every_x(model)  # (V^D, D)
    joint = (
        torch.stack([model.log_prob(every, torch.full((len(every),), k)) for k in range(K)], -1)
        + model.log_prior
    )  # log p(x, y), (V^D, K)
    bayes = joint.exp() / joint.exp().sum(-1, keepdim=True)
    torch.testing.assert_close(model.predict_proba(every), bayes)
    torch.testing.assert_close(model.log_prob(every), joint.logsumexp(-1))  # p(x) = Σ_y p(x, y)
    one = torch.zeros((), dtype=torch.float64)
    torch.testing.assert_close(model.log_prob(every).logsumexp(0), one)
    for k in range(K):  # each class-conditional p(x | y) is normalised too
        torch.testing.assert_close(model.log_prob(every, torch.tensor(k)).logsumexp(0), one)


@pytest.mark.parametrize("feature", ["bernoulli", "categorical", "gaussian"])
def test_features_missing_at_test_time_give_the_model_trained_without_them(feature):
    config = {"num_categories": 3, "var_smoothing": 0.0}
    model, x, y = fitted(feature, D=5, **config)
    keep = torch.tensor([0, 2, 3])
    small = dgm.create("naive_bayes", (3,), num_classes=K, feature=feature, **config).double()
    small.fit_step([(x[:, keep], y)])
    mask = torch.zeros(5, dtype=torch.bool)
    mask[keep] = True
    test = x[:40]
    torch.testing.assert_close(model.log_prob_observed(test, mask), small.log_prob(test[:, keep]))
    c = y[:40]
    torch.testing.assert_close(
        model.log_prob_observed(test, mask, c), small.log_prob(test[:, keep], c)
    )
    torch.testing.assert_close(model.predict_proba(test, mask), small.predict_proba(test[:, keep]))
    if test.is_floating_point():  # NaN marks a missing feature in float data
        with_nan = test.clone()
        with_nan[:, ~mask] = math.nan
        torch.testing.assert_close(model.log_prob(with_nan), small.log_prob(test[:, keep]))
        torch.testing.assert_close(
            model.predict_proba(with_nan), small.predict_proba(test[:, keep])
        )


def test_draws_follow_the_prior_and_the_class_conditionals():
    model, _, _ = fitted("categorical", D=2, num_categories=3)
    n = 20000
    g = torch.Generator().manual_seed(5)
    x = model.sample(n, c=torch.tensor(1), generator=g)
    freq = torch.stack([(x == v).double().mean(0) for v in range(3)], -1)  # (D, V)
    p = model.log_probs[1].exp()
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / n).sqrt()).all()
    # unconditional draws: the pairs' frequencies are p(x) = Σ_y p(y) p(x | y)
    x = model.sample(n, generator=g)
    every = every_x(model)
    freq = (x[:, None, :] == every[None]).all(-1).double().mean(0)
    p = model.log_prob(every).exp()
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / n).sqrt()).all()


def test_completion_without_labels_draws_the_exact_conditional():
    model = dgm.create("naive_bayes", (3,), num_classes=2, feature="categorical").double()
    p1 = torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.7, 0.8]], dtype=torch.float64)  # p(x_d=1 | y)
    model.log_probs.copy_(torch.stack([1 - p1, p1], -1).log())  # x_0 = 1 points to y = 1
    # and p(y) to y = 0: the posterior p(y | x_0) weighs both (a uniform p(y) would hide it)
    model.log_prior.copy_(torch.tensor([0.8, 0.2], dtype=torch.float64).log())
    every = every_x(model)
    x = torch.tensor([[1, 0, 0]])
    mask = torch.tensor([True, False, False])
    lp = model.log_prob(every).masked_fill(every[:, 0] != 1, -math.inf)
    probs = lp.softmax(0)  # p(x_1, x_2 | x_0 = 1) by enumeration, y summed out
    n = 8000
    draws = model.complete(x.expand(n, 3), mask, generator=torch.Generator().manual_seed(2))
    assert (draws[:, 0] == 1).all()
    freq = (draws[:, None, :] == every[None]).all(-1).double().mean(0)
    assert ((freq - probs).abs() <= 5 * (probs * (1 - probs) / n).sqrt() + 1e-12).all()


def test_gaussian_fit_is_per_class_mean_and_variance():
    model, x, y = fitted("gaussian", D=2, var_smoothing=0.0)
    for k in range(K):
        xk = x[y == k]
        torch.testing.assert_close(model.means[k], xk.mean(0))
        torch.testing.assert_close(model.variances[k], xk.var(0, unbiased=False))


def test_errors_name_the_fix():
    model = dgm.create("naive_bayes", (2,), num_classes=3).double()
    with pytest.raises(ValueError, match="pass the class labels"):
        model.fit_step([(torch.zeros(4, 2, dtype=torch.float64), None)])
    with pytest.raises(ValueError, match="--binarize static"):
        model.log_prob(torch.full((1, 2), 0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="feature must be"):
        dgm.create("naive_bayes", (2,), feature="poisson")
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        dgm.create("naive_bayes", (2,), num_classes=0)
    flat = dgm.create("naive_bayes", (2,), num_classes=2, feature="gaussian", var_smoothing=0.0)
    with pytest.raises(ValueError, match="--var-smoothing"):
        flat.fit_step([(torch.ones(4, 2), torch.tensor([0, 1, 0, 1]))])  # constant features
