"""benchmarks/side_by_side_latent.py trains dgm's IWAE and β-VAE against pythae's: on the
same weights and the same draws of z both objectives must agree, terms and gradients (a
wrong k, β, log-variance scaling or draw order would differ by far more than float32
rounding), and pythae's trained weights must come back into dgm's model unchanged."""

import pytest
import torch

import dgm
from helpers import BENCH_EXTRA

pytest.importorskip("pythae", reason=BENCH_EXTRA)
from benchmarks import side_by_side_latent as bench
from benchmarks.pythae_compare import load_into_dgm, pythae_model

SMALL = {"latent_dim": 3, "hidden_sizes": (16,), "decoder": "bernoulli"}


def small_pair(row: bench.Row, seed: int = 0) -> tuple[dgm.GenerativeModel, torch.nn.Module]:
    torch.manual_seed(seed)
    model = dgm.create("vae", (1, 8, 8), **{**SMALL, **row.dgm_config}).train()
    return model, pythae_model(model, row.kind, **row.options).train()


@pytest.mark.parametrize("row", bench.ROWS, ids=[r.kind for r in bench.ROWS])
def test_objectives_agree_on_the_same_weights_and_draws(row: bench.Row) -> None:
    model, peer = small_pair(row)
    x = (torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    same = bench.objective_check(model, peer, x, seed=3)
    bench.check_agrees(row, same)  # raises SystemExit when they differ
    assert same["gradient_relative_difference"] < 1e-4
    for k in ("kl", "reconstruction"):
        assert same["dgm"][k] == pytest.approx(same["pythae"][k], rel=1e-5)
    if row.kind == "BetaVAE":  # β weighs the KL in both losses
        beta = row.options["beta"]
        expected = same["dgm"]["reconstruction"] + beta * same["dgm"]["kl"]
        assert same["pythae"]["loss"] == pytest.approx(expected, rel=1e-5)
    other = bench.objective_check(model, peer, x, seed=3, peer_seed=4)  # other draws for pythae
    assert other["gradient_relative_difference"] > 1e-2
    with pytest.raises(SystemExit):
        bench.check_agrees(row, other)


def test_iwae_check_sees_another_number_of_samples() -> None:
    row = bench.ROWS[0]
    model, _ = small_pair(row)
    peer = pythae_model(model, "IWAE", number_samples=row.options["number_samples"] + 1)
    x = (torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    assert bench.objective_check(model, peer, x, seed=3)["gradient_relative_difference"] > 1e-2


def test_trained_pythae_weights_load_back_into_dgm() -> None:
    """A pythae model's weights (log σ² rows) in a fresh dgm model give back the dgm model
    they were copied from: the same parameters and the same IWAE bound."""
    row = bench.ROWS[1]
    model, peer = small_pair(row)
    torch.manual_seed(9)
    fresh = dgm.create("vae", (1, 8, 8), **{**SMALL, **row.dgm_config})
    loaded = load_into_dgm(peer, fresh)
    for (name, a), b in zip(model.named_parameters(), loaded.parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    x = (torch.rand(5, 1, 8, 8) < 0.5).float()
    torch.manual_seed(2)
    ours = model.log_prob_iw(x, 7)
    torch.manual_seed(2)
    torch.testing.assert_close(loaded.log_prob_iw(x, 7), ours)


def test_the_speed_pass_alternates_the_sides_and_reads_dgm_over_pythae(monkeypatch) -> None:
    """The rounds rotate the order of the sides, and each stored ratio is dgm's time over
    that pythae side's, the median of the per-round ratios (dgm 2 ms, Adam 1, fused 4)."""
    import benchmarks.pythae_compare as pc

    batches = [torch.bernoulli(torch.full((pc.CS236_BATCH, 1, 28, 28), 0.3)) for _ in range(2)]
    monkeypatch.setattr(pc, "load_batches", lambda: (dgm.data.DataConfig("digits"), batches))
    asked = {}

    def timed_rounds(sides, **kw):
        asked.update(kw, sides=sorted(sides))
        return {"dgm": [2.0, 2.0], "pythae_adam": [1.0, 1.0], "pythae_adam_fused": [4.0, 4.0]}

    monkeypatch.setattr(pc, "timed_rounds", timed_rounds)
    record = pc._run(quick=True, steps=1, rounds=2, warmup=0)
    assert asked["rotate"] is True and asked["sides"] == ["dgm", "pythae_adam", "pythae_adam_fused"]
    assert record["ratio_dgm_over_pythae_adam"] == 2.0
    assert record["ratio_dgm_over_pythae_adam_fused"] == 0.5
