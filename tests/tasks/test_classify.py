"""dgm.tasks.classify: Bayes' rule on an exact class-conditional model, checked over every
x by enumeration, the label prior, the baseline and the refusals."""

import itertools

import numpy as np
import pytest
import torch

import dgm
from dgm.tasks import classify
from helpers import registered


def test_the_posterior_is_bayes_rule_and_recovers_the_prior():
    torch.manual_seed(0)
    model = dgm.create("fvsbn", (1, 2, 2), num_classes=3).double()
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)), dtype=torch.float64)
    every = every.view(16, 1, 2, 2)
    log_prior = classify.label_log_prior(torch.tensor([0, 0, 1, 2, 2, 2]), 3)
    torch.testing.assert_close(log_prior.exp(), torch.tensor([2, 1, 3], dtype=torch.float64) / 6)
    with torch.no_grad():
        log_px_y = torch.stack([model.log_prob(every, torch.full((16,), y)) for y in range(3)], -1)
    joint = classify.class_log_joint(model, every, log_prior)
    torch.testing.assert_close(joint, log_px_y + log_prior)
    post = classify.posterior(model, every, log_prior)  # (16, 3)
    torch.testing.assert_close(post.sum(-1), torch.ones(16, dtype=torch.float64))
    # Σ_x p(x) p(y | x) = p(y), with p(x) = Σ_y p(y) p(x | y) the model's own marginal
    p_x = joint.logsumexp(-1).exp()  # (16,)
    torch.testing.assert_close(p_x @ post, log_prior.exp())
    torch.testing.assert_close(classify.predict(model, every, log_prior), joint.argmax(-1))


def test_accuracy_and_the_logistic_regression_baseline():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    x = torch.randn(200, 3, generator=g) + 4 * y[:, None]  # separable classes
    assert classify.logistic_regression_accuracy(x[:100], y[:100], x[100:], y[100:]) == 1.0
    assert classify.accuracy(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0])) == 2 / 3


def test_logistic_regression_fills_a_missing_value_with_its_features_training_mean(
    monkeypatch,
):
    """NaN → the mean of the feature's observed training values, in training and test
    rows alike; 0 for a feature no training example observes."""
    from sklearn.linear_model import LogisticRegression

    seen = {}
    fit, score = LogisticRegression.fit, LogisticRegression.score
    monkeypatch.setattr(
        LogisticRegression,
        "fit",
        lambda self, X, y: (seen.update(fit=X.copy()), fit(self, X, y))[1],
    )
    monkeypatch.setattr(
        LogisticRegression,
        "score",
        lambda self, X, y: (seen.update(test=X.copy()), score(self, X, y))[1],
    )
    nan = float("nan")
    x = torch.tensor([[1.0, nan, nan], [3.0, 2.0, nan], [nan, 4.0, nan], [nan, nan, nan]])
    y = torch.tensor([0, 1, 0, 1])
    classify.logistic_regression_accuracy(x, y, torch.full((1, 3), nan), torch.tensor([0]))
    means = np.array([2.0, 3.0, 0.0])  # observed means; the third feature never observed
    expected = np.where(np.isnan(x.numpy()), means, x.numpy())
    np.testing.assert_allclose(seen["fit"], expected)
    np.testing.assert_allclose(seen["test"], means[None])


def test_unconditional_and_likelihood_free_models_are_refused():
    with pytest.raises(ValueError, match="not class-conditional: train a class-conditional one"):
        classify.check_classifier(dgm.create("fvsbn", (1, 2, 2)))
    with registered():
        gan = dgm.create("test_gan", (3,))
    with pytest.raises(ValueError, match="has no likelihood"):
        classify.check_classifier(gan)
    with pytest.raises(ValueError, match="labels lie outside"):
        classify.label_log_prior(torch.tensor([0, 3]), 3)
