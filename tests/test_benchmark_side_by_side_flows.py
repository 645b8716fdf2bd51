"""benchmarks/side_by_side_flows.py puts normflows' log-likelihood in dgm's units: with
every coupling at the identity, both flows are the logit transform and an N(0, I) base,
so the same images and the same dequantization noise must give the same log P(x) on the
0..255 scale (a missing −D ln 256, another u or another logit α would differ by far more
than float32 rounding)."""

import pytest
import torch

import dgm
from helpers import BENCH_EXTRA, masked_checkerboards

pytest.importorskip("normflows", reason=BENCH_EXTRA)
from benchmarks import side_by_side_flows as bench


def test_normflows_log_prob_is_in_dgm_units_with_the_same_noise():
    torch.manual_seed(0)
    ours = dgm.create(
        "realnvp",
        (1, 28, 28),
        dequantize="uniform",
        logit_alpha=bench.ALPHA,
        architecture="conv",
        num_scales=2,
        hidden_channels=4,
    ).eval()
    for m in ours.modules():
        if hasattr(m, "conditioner"):  # last layer zero: the coupling is the identity
            torch.nn.init.zeros_(m.conditioner.net[-1].weight)
            torch.nn.init.zeros_(m.conditioner.net[-1].bias)
    peer = bench._normflows_realnvp(4).eval()  # normflows starts its couplings at zero
    x = torch.randint(256, (4, 1, 28, 28))
    with torch.no_grad():
        torch.manual_seed(3)
        ours_lp = ours.log_prob(x)
        torch.manual_seed(3)
        peer_lp = bench.peer_log_prob(peer, x)
        torch.manual_seed(4)  # other noise: the check is sharp enough to see it
        other = bench.peer_log_prob(peer, x)
    torch.testing.assert_close(peer_lp, ours_lp, rtol=0, atol=1e-2)
    assert (other - ours_lp).abs().max() > 0.1


def test_conv_macs_counts_functional_convolutions_as_module_ones():
    # the polyphase checkerboard coupling calls F.conv2d, not its nn.Conv2d modules: the
    # counter must see both, and give dgm's RealNVP built the former way (masked couplings
    # at full resolution, modules only) the 3,154,816 per image the module hooks counted
    conv = torch.nn.Conv2d(2, 3, 3, padding=1)
    x = torch.randn(2, 2, 5, 4)
    want = 3 * 5 * 4 * 2 * 9
    assert bench.conv_macs(conv, conv, x) == want
    f = lambda x: torch.nn.functional.conv2d(x, conv.weight, padding=1)  # noqa: E731
    assert bench.conv_macs(conv, f, x) == want
    torch.manual_seed(0)
    pair = bench.PAIRS[1]
    model = dgm.create("realnvp", (1, 28, 28), **pair.dgm_config)
    images = torch.randn(1, 1, 28, 28)
    fast = bench.conv_macs(model, model.log_prob, images)
    former = masked_checkerboards(model)
    assert bench.conv_macs(former, former.log_prob, images) == 3_154_816
    assert fast != 3_154_816  # the polyphase path's own convolutions were counted


def test_the_toy_comparison_leaves_a_diverged_seed_out_of_its_library(monkeypatch) -> None:
    """Three seeds, zuko diverged on one: zuko's figures are over the two it trained
    (SE = SD / √2), normflows' over all three, and the divergence is counted."""
    import math
    import statistics

    from benchmarks import flows_compare as fc

    monkeypatch.setattr(fc, "COMPARE_TOYS", ("moons",))
    monkeypatch.setattr(fc, "COMPARE_MODELS", ("maf",))
    runs = []
    for seed, (dgm_nll, zuko, normflows) in enumerate([(1.0, 1.5, 1.2), (1.1, math.inf, 1.0),
                                                        (0.9, 1.0, 1.4)]):  # fmt: skip
        nll = {"dgm": dgm_nll, "zuko": zuko, "normflows": normflows}
        runs.append({"toy": "moons", "model": "maf", "seed": seed, "true_nll": 0.5,
                     "test_nll": nll, "ratio_dgm_over": {"zuko": 1.0, "normflows": 2.0},
                     "nll_dgm_minus": {lib: {"diff": dgm_nll - nll[lib]}
                                       for lib in ("zuko", "normflows")}})  # fmt: skip
    (case,) = fc.by_cases(runs)
    assert case["diverged"] == {"dgm": 0, "zuko": 1, "normflows": 0}
    kept = [1.0 - 1.5, 0.9 - 1.0]
    assert case["nll_dgm_minus_mean"]["zuko"] == pytest.approx(statistics.mean(kept))
    assert case["nll_dgm_minus_se"]["zuko"] == pytest.approx(statistics.stdev(kept) / math.sqrt(2))
    three = [1.0 - 1.2, 1.1 - 1.0, 0.9 - 1.4]
    assert case["nll_dgm_minus_se"]["normflows"] == pytest.approx(statistics.stdev(three) / 3**0.5)
    assert case["nll_mean"]["zuko"] == pytest.approx(1.25)
