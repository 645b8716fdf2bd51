"""benchmarks/side_by_side_gan.py's reference loop (benchmarks/dcgan_loop.py) runs dgm's
algorithm: on copied weights, with the same batch and the same z, one iteration of each side
(a discriminator step, then a generator step) gives the same losses, the same updated
weights and the same batch-norm statistics, in float64, for both objectives. Another z, or
a loss written differently (the reference's generator on the minimax loss), moves them by
far more than rounding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (1, 8, 8)
SMALL = {"conv_channels": 4, "latent_dim": 6}


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch):  # benchmarks/ is a top-level folder
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.side_by_side_gan as module

    return module


def _pair(bench, objective: str, reuse: bool = False):
    ours, ref = bench.make_pair(objective, SHAPE, 0, **SMALL, reuse_fakes=reuse)
    ours.model.double()
    ref.netG.double()
    ref.netD.double()
    return ours, ref


def _state(ours, ref) -> tuple[dict, dict]:
    """Every weight and batch-norm buffer of both sides, under dgm's names."""
    mine = {k: v.detach().clone() for k, v in ours.model.state_dict().items()}
    theirs = {f"generator.{k}": v.detach().clone() for k, v in ref.netG.state_dict().items()}
    theirs |= {f"discriminator.{k}": v.detach().clone() for k, v in ref.netD.state_dict().items()}
    return mine, theirs


@pytest.mark.parametrize("reuse", [False, True])
@pytest.mark.parametrize("objective", ["nonsaturating", "hinge"])
def test_one_step_of_each_side_is_the_same(bench, objective: str, reuse: bool) -> None:
    # reuse: dgm's --reuse-fakes against examples/dcgan as it is (the generator step scores
    # the discriminator step's fakes); three iterations on different batches, so a fake
    # left over from one step, or a fresh z drawn where none should be, shows
    ours, ref = _pair(bench, objective, reuse)
    before, copied = _state(ours, ref)
    assert before.keys() == copied.keys()
    for k in before:
        torch.testing.assert_close(copied[k], before[k], rtol=0, atol=0)
    for step in range(3 if reuse else 1):
        gen = torch.Generator().manual_seed(1 + step)
        real = torch.rand(16, *SHAPE, dtype=torch.float64, generator=gen)
        torch.manual_seed(7 + step)
        d_ours, g_ours = ours.step(real)
        torch.manual_seed(7 + step)
        d_ref, g_ref = ref.step(real)
        torch.testing.assert_close(d_ref, d_ours, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(g_ref, g_ours, rtol=1e-10, atol=1e-12)
    assert ours.model._fakes is None  # the generator phase took them
    after, theirs = _state(ours, ref)
    for k in after:
        if k.endswith(("weight", "running_mean", "running_var")):  # (a bias before a
            # batch norm has no gradient: it stays)
            assert (after[k] - before[k]).abs().max() > 1e-6, f"{k} did not change"
        torch.testing.assert_close(theirs[k], after[k], rtol=1e-9, atol=1e-12, msg=k)


def test_the_check_sees_another_z_and_another_loss(bench) -> None:
    ours, ref = _pair(bench, "nonsaturating")
    real = torch.rand(16, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(7)
    ours.step(real)
    torch.manual_seed(8)  # another z
    ref.step(real)
    after, theirs = _state(ours, ref)
    worst = max((theirs[k] - after[k]).abs().max() for k in after if "weight" in k)
    assert worst > 1e-6

    ours, ref = _pair(bench, "nonsaturating")
    ref.g_loss = lambda v: -torch.nn.functional.softplus(v).mean()  # the minimax generator
    torch.manual_seed(7)
    _, g_ours = ours.step(real)
    torch.manual_seed(7)
    _, g_ref = ref.step(real)
    assert (g_ours - g_ref).abs() > 1e-3


def test_the_reference_copy_back_samples_as_the_reference(bench) -> None:
    """``as_dgm`` puts the reference's weights and statistics in a dgm model: its samples
    are the reference generator's on the same z."""
    ours, ref = _pair(bench, "hinge")
    real = torch.rand(16, *SHAPE, dtype=torch.float64)
    ref.step(real)  # the batch-norm statistics move
    twin = ref.as_dgm(ours.model).eval()
    ref.netG.eval()
    z = torch.randn(
        5, SMALL["latent_dim"], dtype=torch.float64, generator=torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        expected = ref.netG(z)
    got = twin.sample(5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_the_table_reads_higher_precision_as_better(bench) -> None:
    """FD is lower-better, precision and recall higher-better: a dgm ahead on all three
    reads "better" for each, and the table has one row per objective."""

    def side(fd: float, precision: float, ms: float) -> dict:
        return {
            "fd": fd,
            "kid": fd / 100,
            "precision": precision,
            "recall": precision / 10,
            "modes": 10,
            "modes_captured": 9,
            "ms_per_step": ms,
        }

    per_seed = [
        {"seed": s, "dgm": side(30 + s, 0.8 + s / 100, 90), "reference": side(40 + s, 0.7, 100)}
        for s in range(3)
    ]
    row = {"objective": "hinge", "per_seed": per_seed, **bench.summarise(per_seed)}
    assert row["fd_difference"]["mean"] == pytest.approx(-10)
    assert row["ms_ratio"]["mean"] == pytest.approx(0.9)
    record = {
        "reference": bench.REFERENCE,
        "data": "fashion_mnist",
        "model_config": bench.IMAGE,
        "train_steps": 10,
        "batch_size": 64,
        "lr": 2e-4,
        "betas": [0.5, 0.999],
        "threads": 1,
        "seeds": [0, 1, 2],
        "num_samples": 100,
        "feature_space": "dgm Fashion-MNIST features",
        "min_share": 0.25,
        "rows": [row],
    }
    text = "\n".join(bench.table(record))
    assert "FD better than" in text
    assert "precision better than" in text and "recall better than" in text
    assert "| hinge |" in text and "0.90x" in text
