"""The side-by-side benchmarks' own pieces: the nanoGPT-style reference is the model it
claims to be (same size as dgm's GPT, causal, nanoGPT's decay groups), nats per character
count real characters only, and the reading line follows the intervals."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import dgm

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch):  # benchmarks/ is a top-level folder
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.side_by_side_gpt as module

    return module


def test_reference_has_dgm_gpts_parameter_count(bench) -> None:
    config = {"n_layer": 2, "n_head": 2, "n_embd": 16}
    ours = dgm.create("gpt", (7,), vocab_size=11, end_token=0, **config)
    ref = bench.RefGPT(11, 7, **config)
    assert sum(p.numel() for p in ref.parameters()) == sum(p.numel() for p in ours.parameters())
    assert ref.lm_head.weight is ref.wte.weight  # tied


def test_reference_is_causal(bench) -> None:
    """d logit_t / d input_s is zero for every s after t (inputs as embeddings)."""
    torch.manual_seed(0)
    ref = bench.RefGPT(5, 6, n_layer=2, n_head=2, n_embd=8).double()
    h0 = torch.randn(1, 6, 8, dtype=torch.float64, requires_grad=True)

    def logits(h: torch.Tensor) -> torch.Tensor:
        for block in ref.blocks:
            h = block(h)
        return ref.lm_head(ref.ln_f(h))  # (1, 6, V + 1)

    jac = torch.autograd.functional.jacobian(logits, h0)  # (1, 6, V+1, 1, 6, 8)
    reach = jac.abs().sum(dim=(0, 2, 3, 5))  # (6, 6): output position x input position
    assert torch.all(reach.triu(1) == 0)
    assert torch.all(reach.diagonal() > 0)


def test_reference_decays_only_matrices(bench) -> None:
    ref = bench.RefGPT(5, 6, n_layer=1, n_head=2, n_embd=8)
    decayed, spared = ref.configure_optimizers(1e-3, 0.1).param_groups
    assert decayed["weight_decay"] == 0.1 and spared["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"])
    assert all(p.dim() < 2 for p in spared["params"])
    n = len(decayed["params"]) + len(spared["params"])
    assert n == len(list(ref.parameters()))  # the tied table once


def test_nats_per_char_counts_real_characters(bench) -> None:
    """Two words padded with end token 0: 3 + 1 and 1 + 1 real tokens of 4 each."""
    x = torch.tensor([[3, 4, 2, 0], [5, 0, 0, 0]])
    per_token = torch.tensor([1.0, 2.0])  # nats per position of each row, padding included

    def nll(rows: torch.Tensor) -> torch.Tensor:
        return 4 * per_token[: len(rows)]

    assert bench.nats_per_char(nll, x, end_token=0) == pytest.approx((4 + 8) / (4 + 2))


def test_verdict_reads_the_interval(bench) -> None:
    from benchmarks.peers import verdict

    assert verdict({"mean": -0.5, "half_width": 0.2}, than="") == "better than"
    assert verdict({"mean": 0.5, "half_width": 0.2}, than="") == "worse than"
    assert verdict({"mean": 0.1, "half_width": 0.2}, than="") == "not distinguishable from"
    assert verdict({"mean": 0.1, "half_width": math.nan}, than="") == "not distinguishable from"
    # higher is better (precision, recall): the same interval reads the other way
    assert verdict({"mean": -0.5, "half_width": 0.2}, lower_is_better=False, than="it") == (
        "worse than it"
    )


def test_interval_is_the_student_t_half_width() -> None:
    """Over n values: t(0.975, n − 1) · sd / √n, for n beyond a short table too (n = 10:
    t = 2.262, not the normal's 1.96)."""
    from benchmarks.common import interval

    values = [float(v) for v in range(10)]  # sd = √(55/6)
    assert interval(values)["half_width"] == pytest.approx(
        2.2622 * math.sqrt(55 / 6) / 10**0.5, 1e-4
    )
    assert math.isnan(interval([1.0])["half_width"])


def test_the_other_summaries_are_what_their_names_say() -> None:
    """ci95: mean ± t(0.975, n − 1) sd / √n; summary: the median (not the mean) with the
    extremes; mean_se: the sample SD over √n."""
    from benchmarks.common import ci95, mean_se, summary

    low, high = ci95([1.0, 2.0, 3.0])  # sd 1, t(0.975, 2) = 4.3027
    assert (high - low) / 2 == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert (low + high) / 2 == pytest.approx(2.0) and ci95([1.0]) is None
    assert summary([1.0, 2.0, 9.0]) == {"median": 2.0, "min": 1.0, "max": 9.0}
    mean, se = mean_se(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    assert mean == pytest.approx(2.0) and se == pytest.approx(1 / math.sqrt(3))
