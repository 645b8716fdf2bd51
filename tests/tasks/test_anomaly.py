"""dgm.tasks.anomaly on Gaussians whose scores are known: AUROC of far-away points, the
likelihood ratio cancelling a shared complexity term, and typicality catching a set that
is *more* likely than typical data (Nalisnick et al. 2019's failure mode)."""

import math

import pytest
import torch
from torch.distributions import constraints

import dgm
from dgm.model import Likelihood
from dgm.tasks import anomaly
from helpers import registered


def gaussian(d, scale=None):
    """The test models' diagonal Gaussian N(0, diag scale²) in float64."""
    with registered():
        model = dgm.create("test_gaussian", (d,)).double()
    with torch.no_grad():
        model.loc.zero_()
        if scale is not None:
            model.log_scale.copy_(torch.as_tensor(scale, dtype=torch.float64).log())
    return model.eval()


def test_far_away_points_get_auroc_one():
    model = gaussian(3)
    g = torch.Generator().manual_seed(0)
    x_in = torch.randn(200, 3, generator=g, dtype=torch.float64)
    x_out = torch.randn(50, 3, generator=g, dtype=torch.float64) + 20
    nll_in, nll_out = (-anomaly.log_likelihood(model, x, batch_size=64) for x in (x_in, x_out))
    torch.testing.assert_close(nll_in, -model.log_prob(x_in))
    assert anomaly.auroc_auprc(nll_in, nll_out) == (1.0, 1.0)
    assert anomaly.auroc_auprc(nll_out, nll_in)[0] == 0.0  # the labels swapped


def test_likelihood_ratio_cancels_the_shared_complexity_term():
    # x = (s, b_1..b_20): s carries the semantics, b the "complexity" both models share.
    # Out-of-distribution x have s near 3 but b = 0, so simple that their raw likelihood
    # is higher than the data's; the background model knows b but not s (scale 10).
    d = 21
    model = gaussian(d)
    background = gaussian(d, [10.0] + [1.0] * 20)
    g = torch.Generator().manual_seed(0)
    x_in = torch.randn(500, d, generator=g, dtype=torch.float64)
    x_out = torch.zeros(500, d, dtype=torch.float64)
    x_out[:, 0] = 3 + 0.3 * torch.randn(500, generator=g, dtype=torch.float64)
    lp = {k: anomaly.log_likelihood(model, x) for k, x in (("in", x_in), ("out", x_out))}
    bg = {k: anomaly.log_likelihood(background, x) for k, x in (("in", x_in), ("out", x_out))}
    raw, _ = anomaly.auroc_auprc(-lp["in"], -lp["out"])
    assert raw < 0.2  # the raw likelihood prefers the simple outliers
    ratio = {k: anomaly.likelihood_ratio_scores(lp[k], bg[k]) for k in lp}
    for k, x in (("in", x_in), ("out", x_out)):  # only s is left: (1/2)(1 − 1/100) s² − ln 10
        s = x[:, 0]
        torch.testing.assert_close(
            ratio[k], 0.5 * (1 - 0.01) * s**2 - torch.log(torch.tensor(10.0))
        )
    auroc, _ = anomaly.auroc_auprc(ratio["in"], ratio["out"])
    assert auroc > 0.95
    with pytest.raises(ValueError, match="score the same examples"):
        anomaly.likelihood_ratio_scores(lp["in"], bg["in"][:3])


def test_typicality_flags_a_set_more_likely_than_typical_where_the_raw_score_fails():
    d = 50
    model = gaussian(d)
    g = torch.Generator().manual_seed(0)
    draw = lambda n, s=1.0: s * torch.randn(n, d, generator=g, dtype=torch.float64)  # noqa: E731
    train, valid, x_in = draw(2000), draw(2000), draw(500)
    x_out = draw(500, 0.3)  # near the mode: higher likelihood than any typical draw
    nll = {
        k: -anomaly.log_likelihood(model, x)
        for k, x in (("train", train), ("valid", valid), ("in", x_in), ("out", x_out))
    }
    entropy = anomaly.entropy_estimate(nll["train"])
    assert entropy == pytest.approx(
        d / 2 * (1 + torch.log(torch.tensor(2 * torch.pi)).item()), rel=0.01
    )
    rows = anomaly.detection_table(
        nll["in"],
        nll["out"],
        nll["train"],
        valid_nll=nll["valid"],
        typical_batch=5,
        generator=torch.Generator().manual_seed(0),
    )
    by = {r["method"]: r for r in rows}
    assert by["likelihood"]["auroc"] < 0.01  # the failure: outliers look *more* likely
    assert by["typicality"]["auroc"] > 0.99
    batch = by["typicality (batches of 5)"]
    assert batch["auroc"] > 0.99 and batch["flagged_out"] == 1.0


def test_bootstrap_threshold_keeps_the_false_alarm_rate():
    # NLL of N(0, I_10) data is (χ²_10 + const)/2: batches of 4 from fresh data should
    # exceed the α = 0.05 threshold about 5 % of the time
    model = gaussian(10)
    g = torch.Generator().manual_seed(0)

    def nll(n):
        return -anomaly.log_likelihood(model, torch.randn(n, 10, generator=g, dtype=torch.float64))

    entropy = anomaly.entropy_estimate(nll(4000))
    eps = anomaly.bootstrap_threshold(
        nll(4000), entropy, 4, num_bootstrap=4000, alpha=0.05, generator=g
    )
    fresh = anomaly.batch_statistics(nll(4 * 4000), entropy, 4)
    rate = (fresh > eps).double().mean().item()
    assert abs(rate - 0.05) < 5 * (0.05 * 0.95 / 4000) ** 0.5 + 0.01


def test_perturb_mutates_the_asked_share_within_the_support():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(100, 50)
    assert torch.equal(anomaly.perturb(x, 0.0, constraints.boolean, g), x)
    bits = anomaly.perturb(x, 0.4, constraints.boolean, g)
    assert set(bits.unique().tolist()) == {0.0, 1.0}
    assert abs(bits.mean().item() - 0.2) < 0.02  # half the mutations draw a 1
    levels = anomaly.perturb(x.long(), 1.0, constraints.integer_interval(0, 255), g)
    assert levels.dtype == torch.long and levels.max() > 200 and levels.min() >= 0
    four = anomaly.perturb(x.long(), 1.0, constraints.integer_interval(0, 3), g)  # 5000 draws
    counts = torch.bincount(four.flatten(), minlength=4)
    assert len(counts) == 4 and ((counts / 5000 - 0.25).abs() < 0.03).all(), counts  # 0..3
    unit = anomaly.perturb(x, 1.0, constraints.real, g)
    assert 0 <= unit.min() and unit.max() <= 1
    with pytest.raises(ValueError, match=r"mutation rate must lie in \[0, 1\]"):
        anomaly.perturb(x, 1.5, constraints.boolean, g)


def test_models_without_a_likelihood_are_refused():
    with registered():
        gan = dgm.create("test_gan", (3,))
    assert gan.likelihood is Likelihood.NONE
    with pytest.raises(ValueError, match="needs a likelihood"):
        anomaly.log_likelihood(gan, torch.zeros(2, 3))


def test_a_class_conditional_model_is_scored_by_its_mixture():
    torch.manual_seed(0)
    model = dgm.create("fvsbn", (1, 2, 2), num_classes=3).double()
    with torch.no_grad():  # at initialisation every class gives the same p(x | y)
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    x = torch.bernoulli(torch.full((4, 1, 2, 2), 0.5, dtype=torch.float64))
    prior = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64).log()
    with torch.no_grad():
        joint = torch.stack([model.log_prob(x, torch.full((4,), y)) for y in range(3)], -1)
    assert (joint.max(-1).values - joint.min(-1).values > 0.1).all()  # the classes differ
    torch.testing.assert_close(
        anomaly.log_likelihood(model, x, log_prior=prior), (joint + prior).logsumexp(-1)
    )
    torch.testing.assert_close(  # the default: uniform over the classes
        anomaly.log_likelihood(model, x), joint.logsumexp(-1) - math.log(3)
    )
