"""The EMA of the weights: the exponential average itself, saved with every checkpoint,
restored on resume bit for bit, used for samples and validation, and what `dgm.load`,
`dgm eval` and `dgm sample` read unless told --no-ema."""

import json

import pytest
import torch
from safetensors.torch import load_file

import dgm
from dgm import run_dir as rd
from dgm.cli import main
from dgm.data import DataConfig
from dgm.evaluate.likelihood import evaluate
from dgm.train import Trainer, train
from helpers import (
    DiagonalGaussian,
    GaussianConfig,
    fit_tracking_ema,
    gaussian_data,
    quiet_config,
    registered,
)


def test_the_ema_is_the_exponential_average_of_the_weights_after_each_step():
    decay = 0.8
    torch.manual_seed(0)
    model = DiagonalGaussian((2,), GaussianConfig())
    trainer = Trainer(
        model,
        gaussian_data(),
        None,
        quiet_config(steps=12, lr=0.05, ema_decay=decay),
        progress=False,
    )
    ema = fit_tracking_ema(trainer, decay)
    for k, _ in model.named_parameters():
        assert not torch.allclose(ema[k], model.state_dict()[k], atol=1e-3), k  # not the raw
    assert torch.equal(ema["updates"], model.updates)  # buffers: the model's own


def _ema_run(run_dir, stop_at=None):
    """20 steps with EMA on, stopped after ``stop_at``; without it, a resume."""
    torch.manual_seed(0)
    model = DiagonalGaussian((2,), GaussianConfig())
    cfg = quiet_config(steps=20, lr=0.05, ema_decay=0.9, checkpoint_every=5)
    trainer = Trainer(model, gaussian_data(), None, cfg, run_dir, progress=False)
    original = trainer._train_step

    def stop():
        original()
        if trainer.step + 1 == stop_at:
            trainer.request_stop()

    trainer._train_step = stop
    with registered():
        if stop_at is None:
            trainer.resume()
        return trainer.fit()


def test_ema_is_saved_with_each_checkpoint_and_a_resumed_run_ends_bit_identical(tmp_path):
    _ema_run(tmp_path / "whole", stop_at=21)  # never stops early
    _ema_run(tmp_path / "cut", stop_at=7)
    assert rd.weights_step(tmp_path / "cut" / rd.EMA_WEIGHTS) == 7
    _ema_run(tmp_path / "cut")  # resume
    for name in (rd.WEIGHTS, rd.EMA_WEIGHTS):
        whole = load_file(str(tmp_path / "whole" / name))
        cut = load_file(str(tmp_path / "cut" / name))
        assert whole.keys() == cut.keys()
        for k in whole:
            assert torch.equal(whole[k], cut[k]), f"{name}: {k}"
        assert rd.weights_step(tmp_path / "cut" / name) == 20
    raw = load_file(str(tmp_path / "whole" / rd.WEIGHTS))
    ema = load_file(str(tmp_path / "whole" / rd.EMA_WEIGHTS))
    assert not torch.equal(raw["loc"], ema["loc"])


def test_validation_and_sample_grids_use_the_ema_weights(tmp_path):
    torch.manual_seed(0)
    model = DiagonalGaussian((2,), GaussianConfig())
    sampled_locs = []
    sample = model.sample

    def recording_sample(n, c=None, *, generator=None):
        sampled_locs.append(model.loc.detach().clone())
        return sample(n, c, generator=generator)

    model.sample = recording_sample
    valid = gaussian_data(n=64, seed=1)
    cfg = quiet_config(steps=10, lr=0.05, ema_decay=0.9, eval_every=10, sample_every=10)
    with registered():
        last = Trainer(model, gaussian_data(), valid, cfg, tmp_path, progress=False).fit()
        averaged = DiagonalGaussian((2,), GaussianConfig())
        rd.load_weights(tmp_path / rd.EMA_WEIGHTS, averaged)
    assert torch.equal(sampled_locs[-1], averaged.loc.detach())
    assert not torch.equal(sampled_locs[-1], model.loc.detach())  # the raw weights are back
    assert last["valid/nll"] == pytest.approx(evaluate(averaged, valid)["nll"], abs=1e-6)
    assert last["valid/nll"] != pytest.approx(evaluate(model, valid)["nll"], abs=1e-3)
    best = load_file(str(tmp_path / rd.BEST_WEIGHTS))  # the weights that were scored
    assert torch.equal(best["loc"], averaged.loc.detach())


def test_load_eval_and_sample_read_the_ema_unless_told_no_ema(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    data = DataConfig("moons", num_samples=256)
    cfg = quiet_config(steps=10, lr=0.05, ema_decay=0.9)
    with registered():
        train("test_gaussian", data, run, cfg, progress=False)
        test_split = data.load("test")
        ema, raw = dgm.load(run), dgm.load(run, ema=False)
        assert not torch.equal(ema.loc, raw.loc)
        assert torch.equal(raw.loc, load_file(str(run / rd.WEIGHTS))["loc"])
        nll = {}
        for flags in ([], ["--no-ema"]):
            capsys.readouterr()
            assert main(["eval", str(run), "--json", "--device", "cpu", *flags]) == 0
            nll[bool(flags)] = json.loads(capsys.readouterr().out)["nll"]
        assert nll[False] == pytest.approx(evaluate(ema, test_split)["nll"], abs=1e-6)
        assert nll[True] == pytest.approx(evaluate(raw, test_split)["nll"], abs=1e-6)
        assert nll[False] != pytest.approx(nll[True], abs=1e-4)

        drawn = []
        monkeypatch.setattr(
            "dgm.report.plots.save_samples", lambda x, path, **kw: drawn.append(x) or True
        )
        for flags in ([], ["--no-ema"]):
            assert (
                main(["sample", str(run), "-n", "8", "--out", str(tmp_path / "s.png"), *flags]) == 0
            )
        for x, model in zip(drawn, (ema, raw), strict=True):
            with torch.no_grad():
                expected = model.sample(8, generator=torch.Generator().manual_seed(0))
            assert torch.equal(x, expected)


def test_a_step_of_several_phases_updates_the_ema_once():
    """A GAN's step is two critic phases and a generator phase: the EMA averages the
    weights once per step, after all of them (single-phase models hide an update per
    phase)."""
    torch.manual_seed(0)
    model = dgm.create("gan", (2,), hidden_sizes=(8,), latent_dim=2, n_critic=2)
    assert len(model.phases) == 3
    cfg = quiet_config(steps=6, lr=0.01, ema_decay=0.8, batch_size=16)
    trainer = Trainer(model, gaussian_data(), None, cfg, progress=False)
    fit_tracking_ema(trainer, 0.8)
