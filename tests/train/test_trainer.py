"""The trainer serves every kind of model through the contract alone: gradient models
(one phase), GANs (several phases, several critic steps), closed-form fits (EM); and its
promises hold: exact resume, NaN guard, schedule, logs and artefacts."""

import itertools
import json
import math
import os
import signal
import time

import pytest
import torch
from safetensors.torch import load_file

import dgm
import processes
from dgm import run_dir as rd
from dgm.cli import main
from dgm.data import DataConfig, TensorData
from dgm.train import TrainConfig, Trainer, TrainingDiverged, resume, train
from helpers import (
    DiagonalGaussian,
    EMGaussianMixture,
    GaussianConfig,
    MixtureConfig,
    ToyGAN,
    ToyGANConfig,
    gaussian_data,
    quiet_config,
    registered,
    snapshot,
    stopping_at,
)


def test_lr_schedule_warmup_cosine_floor():
    # a run of 100 steps resumed to 120 keeps its horizon (decay_steps) at 100
    c = TrainConfig(steps=120, warmup_steps=10, min_lr_ratio=0.1, decay_steps=100)
    f = [c.lr_factor(s) for s in range(120)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))  # monotone decay, then flat
    assert f[55] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way down the cosine
    assert f[100:] == [pytest.approx(0.1)] * 20  # resumed beyond the horizon: the floor
    unset = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)  # the horizon: steps
    assert [unset.lr_factor(s) for s in range(100)] == [pytest.approx(v) for v in f[:100]]


def test_gradient_model_learns_the_maximum_likelihood_solution():
    data = gaussian_data()
    model = DiagonalGaussian((2,), GaussianConfig())
    Trainer(model, data, None, quiet_config(steps=600, lr=0.05), progress=False).fit()
    assert torch.allclose(model.loc, data.x.mean(0), atol=0.1)
    assert torch.allclose(model.log_scale.exp(), data.x.std(0), atol=0.1)


def test_multi_phase_calls_every_phase_in_order_with_its_own_optimizer():
    data = gaussian_data(d=1)
    model = ToyGAN((1,), ToyGANConfig(critic_steps=3))
    trainer = Trainer(model, data, None, quiet_config(steps=4, lr=1e-2), progress=False)
    assert set(trainer.optimizers) == {"discriminator", "generator"}
    d_params = {id(p) for p in trainer.optimizers["discriminator"].param_groups[0]["params"]}
    assert d_params == {id(p) for p in model.discriminator.parameters()}
    before_g = [p.detach().clone() for p in model.generator.parameters()]
    trainer.fit()
    assert model.calls == (["discriminator"] * 3 + ["generator"]) * 4
    assert any(
        not torch.equal(a, b) for a, b in zip(before_g, model.generator.parameters(), strict=True)
    )


def test_generator_step_leaves_discriminator_untouched():
    data = gaussian_data(d=1)
    model = ToyGAN((1,), ToyGANConfig(critic_steps=1))
    trainer = Trainer(model, data, None, quiet_config(steps=1), progress=False)
    model.phases = ("generator",)  # a step of the generator phase alone
    before_d = [p.detach().clone() for p in model.discriminator.parameters()]
    trainer.fit()
    assert all(
        torch.equal(a, b) for a, b in zip(before_d, model.discriminator.parameters(), strict=True)
    )


def test_gan_generator_moves_towards_the_data():
    torch.manual_seed(1)
    data = gaussian_data(n=2048, d=1)
    model = ToyGAN((1,), ToyGANConfig(critic_steps=1))
    Trainer(
        model,
        data,
        None,
        quiet_config(steps=1500, lr=5e-3, adam_betas=(0.5, 0.999)),
        progress=False,
    ).fit()
    fake = model.sample(4000).squeeze(-1)
    assert abs(fake.mean().item() - 2.0) < 0.3


def test_closed_form_fit_runs_em_and_the_likelihood_never_decreases(tmp_path):
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    x = centres[torch.randint(0, 3, (900,), generator=g)] + 0.5 * torch.randn(900, 2, generator=g)
    torch.manual_seed(3)
    model = EMGaussianMixture((2,), MixtureConfig(num_components=3))
    trainer = Trainer(
        model,
        TensorData(x),
        None,
        quiet_config(steps=30, log_every=1, checkpoint_every=0, batch_size=300),
        tmp_path,
        progress=False,
    )
    assert trainer.optimizers == {}
    with registered():
        trainer.fit()
    lls = [
        json.loads(line)["log_likelihood"]
        for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    assert len(lls) == 30
    assert all(b >= a - 1e-4 for a, b in itertools.pairwise(lls))  # EM's monotonicity
    assert lls[-1] > lls[0] + 0.5
    assert model.log_prob(x).mean().item() == pytest.approx(lls[-1], abs=0.05)


def test_nan_guard_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    data = gaussian_data()
    model = DiagonalGaussian((2,), GaussianConfig(nan_at_update=13))
    with registered(), pytest.raises(TrainingDiverged, match=r"non-finite loss.*\(step 10\)"):
        Trainer(model, data, None, quiet_config(), tmp_path, progress=False).fit()
    weights = load_file(str(tmp_path / rd.WEIGHTS))
    assert rd.weights_step(tmp_path / rd.WEIGHTS) == 10  # the last checkpoint before
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_param_groups_must_cover_the_phases():
    model = ToyGAN((1,), ToyGANConfig())
    model.param_groups = lambda: {"generator": list(model.generator.parameters())}
    with pytest.raises(ValueError, match="give every phase its parameters"):
        Trainer(model, gaussian_data(d=1), None, quiet_config(), progress=False)


def _weights(run_dir):
    return load_file(str(run_dir / rd.WEIGHTS))


def test_interrupted_and_resumed_run_ends_bit_identical(tmp_path):
    data = DataConfig("digits", binarize="dynamic")  # dynamic: the binarization RNG resumes too
    cfg = TrainConfig(
        steps=30,
        batch_size=32,
        eval_every=10,
        sample_every=10,
        log_every=5,
        checkpoint_every=10,
        device="cpu",
        warmup_steps=5,
    )
    kw = dict(latent_dim=4, hidden_sizes=(32,), kl_warmup_steps=20)
    train("vae", data, tmp_path / "whole", cfg, progress=False, **kw)

    with stopping_at(17):
        _, last = train("vae", data, tmp_path / "cut", cfg, progress=False, **kw)
    assert last["interrupted"] and rd.weights_step(tmp_path / "cut" / rd.WEIGHTS) == 17
    resume(tmp_path / "cut", progress=False)

    whole, cut = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert whole.keys() == cut.keys()
    for k in whole:
        assert torch.equal(whole[k], cut[k]), k


def test_resume_to_more_steps_continues_and_never_overwrites_a_run(tmp_path):
    data = DataConfig("digits", binarize="static")
    cfg = TrainConfig(
        steps=10,
        batch_size=32,
        eval_every=5,
        sample_every=5,
        log_every=5,
        checkpoint_every=5,
        device="cpu",
    )
    train("vae", data, tmp_path, cfg, progress=False, latent_dim=2, hidden_sizes=(16,))
    with pytest.raises(FileExistsError, match="dgm resume"):
        train("vae", data, tmp_path, cfg, progress=False)
    resume(tmp_path, 15, progress=False)
    assert rd.weights_step(tmp_path / rd.WEIGHTS) == 15
    saved = json.loads((tmp_path / rd.CONFIG).read_text())
    assert saved["train"]["steps"] == 15 and saved["train"]["decay_steps"] == 10
    lines = [json.loads(s) for s in (tmp_path / rd.METRICS).read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == [5, 10, 15]
    assert any("valid/nll" in r for r in lines)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step_0000005.png",
        "step_0000010.png",
        "step_0000015.png",
    ]
    assert (tmp_path / rd.BEST_WEIGHTS).exists()
    test_x = dgm.data.get("digits", "test", binarize="static").x[:4]
    assert math.isfinite(dgm.load(tmp_path).log_prob(test_x).sum().item())


def test_ctrl_c_checkpoints_and_resume_matches_an_uninterrupted_run(tmp_path):
    """A real SIGINT to `dgm train`, wherever it lands, then `dgm resume`: same weights."""
    args = [
        "train",
        "vae",
        "--data",
        "digits",
        "--binarize",
        "static",
        "--steps",
        "200",  # the signal comes at step 50 or soon after: 150 steps of margin
        "--batch-size",
        "32",
        "--device",
        "cpu",
        "--latent-dim",
        "2",
        "--hidden-sizes",
        "16",
        "--checkpoint-every",
        "50",
        "--eval-every",
        "100",
        "--sample-every",
        "0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # only the interrupted run needs a process of its own: `python -m dgm ...`
    proc = processes.python(["-m", "dgm", *args, "--out", tmp_path / "cut"], env=env)
    deadline = time.time() + 120
    while not (tmp_path / "cut" / rd.WEIGHTS).exists() and time.time() < deadline:
        time.sleep(0.05)  # interrupt once training has really started
    proc.send_signal(signal.SIGINT)
    # the uninterrupted run and the resume are `dgm` in this process (no second `import torch`)
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    _, err = proc.communicate(timeout=120)
    stopped_at = rd.weights_step(tmp_path / "cut" / rd.WEIGHTS)
    if proc.returncode == 130:
        assert "dgm resume" in err and 50 <= stopped_at < 200
    else:  # the signal came after the last step: nothing to resume, but still a clean exit
        assert proc.returncode == 0 and stopped_at == 200
    assert main(["resume", str(tmp_path / "cut")]) == 0
    whole, cut = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    for k in whole:
        assert torch.equal(whole[k], cut[k]), k


def test_a_model_without_likelihood_is_validated_by_its_phase_losses(tmp_path):
    model = ToyGAN((1,), ToyGANConfig(critic_steps=1))
    cfg = quiet_config(steps=4, eval_every=2, sample_every=0)
    with registered():
        Trainer(
            model,
            gaussian_data(d=1),
            gaussian_data(n=64, d=1, seed=1),
            cfg,
            tmp_path,
            progress=False,
        ).fit()
    lines = [json.loads(s) for s in (tmp_path / rd.METRICS).read_text().splitlines()]
    evals = [r for r in lines if "valid/generator/loss" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(math.isfinite(r["valid/discriminator/loss"]) for r in evals)
    assert not (tmp_path / rd.BEST_WEIGHTS).exists()  # no likelihood: no "best" to keep


def test_any_dataset_of_pairs_trains_exactly_like_tensor_data():
    data = gaussian_data(n=128)

    class Pairs(torch.utils.data.Dataset):  # a plain Dataset: items only, no batch()
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            return data.x[i], data.y[i]

    weights = []
    for source in (data, Pairs()):
        torch.manual_seed(0)
        model = DiagonalGaussian((2,), GaussianConfig())
        Trainer(model, source, None, quiet_config(steps=12), progress=False).fit()
        weights.append(model.state_dict())
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k


def _patience_run(run_dir, *, resume=False):
    """A Gaussian fitted until its valid NLL stops improving (patience 3 of 10 steps)."""
    cfg = quiet_config(steps=3000, lr=0.05, eval_every=10, patience=3, checkpoint_every=50)
    torch.manual_seed(0)
    with registered():
        trainer = Trainer(
            DiagonalGaussian((2,), GaussianConfig()),
            gaussian_data(),
            gaussian_data(n=256, seed=1),
            cfg,
            run_dir,
            progress=False,
        )
        if resume:
            trainer.resume()
        return trainer, trainer.fit()


def test_patience_stops_at_the_plateau_and_keeps_the_best_weights(tmp_path):
    trainer, last = _patience_run(tmp_path)
    lines = [json.loads(s) for s in (tmp_path / rd.METRICS).read_text().splitlines()]
    evals = {r["step"]: r["valid/nll"] for r in lines if "valid/nll" in r}
    best_step = min(evals, key=evals.get)
    assert last["stopped_early"] and not last["interrupted"]
    assert last["step"] < 3000 and last["step"] == trainer.step == max(evals)
    assert last["best_step"] == best_step and last["best_nll"] == evals[best_step]
    # stopped at the third evaluation after the best, none of them lower
    assert [s for s in evals if s > best_step] == [best_step + 10 * k for k in (1, 2, 3)]
    assert rd.weights_step(tmp_path / rd.BEST_WEIGHTS) == best_step
    assert rd.weights_step(tmp_path / rd.WEIGHTS) == last["step"]  # checkpoint at the stop


def test_patience_stops_where_nothing_is_written_too(tmp_path):
    """A trainer that writes nothing (in memory, as every rank but 0 is) tracks the best
    score itself and stops at the same step as the one writing the run."""
    _, written = _patience_run(tmp_path)
    _, in_memory = _patience_run(None)
    assert in_memory["stopped_early"] and in_memory["step"] == written["step"]
    assert in_memory["best_step"] == written["best_step"]


def test_patience_stop_resumes_exactly_and_a_stopped_run_stays_stopped(tmp_path):
    _, whole = _patience_run(tmp_path / "whole")
    with stopping_at(whole["step"] - 17):
        _, cut = _patience_run(tmp_path / "cut")
    assert cut["interrupted"] and not cut.get("stopped_early")
    _, last = _patience_run(tmp_path / "cut", resume=True)
    assert last["stopped_early"] and last["step"] == whole["step"]
    assert last["best_step"] == whole["best_step"]
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    before = snapshot(tmp_path / "cut")
    _, again = _patience_run(tmp_path / "cut", resume=True)
    assert again["stopped_early"] and again["step"] == whole["step"]
    assert snapshot(tmp_path / "cut") == before  # no step trained, nothing rewritten


def test_patience_needs_evaluations_and_a_likelihood():
    with pytest.raises(ValueError, match="eval_every is 0"):
        quiet_config(patience=2, eval_every=0)
    gan = ToyGAN((1,), ToyGANConfig(critic_steps=1))
    with pytest.raises(ValueError, match="ToyGAN has no likelihood: leave patience at 0"):
        valid = gaussian_data(d=1, seed=1)
        Trainer(gan, gaussian_data(d=1), valid, quiet_config(patience=2, eval_every=5))
    gauss = DiagonalGaussian((2,), GaussianConfig())
    with pytest.raises(ValueError, match="no valid split"):
        Trainer(gauss, gaussian_data(), None, quiet_config(patience=2, eval_every=5))


def test_gradient_clipping_rescales_what_the_optimizer_steps_on():
    """grad_clip = c far below the gradients' norm: every step the optimizer receives
    gradients of total norm exactly c (AdamW hardly reacts to a constant rescaling, and the
    fused-optimizer test clips on both sides, so skipping the clip passed)."""
    torch.manual_seed(0)
    model = DiagonalGaussian((2,), GaussianConfig())
    cfg = quiet_config(steps=3, lr=0.01, grad_clip=1e-3)
    trainer = Trainer(model, gaussian_data(), None, cfg, progress=False)
    (opt,) = trainer.optimizers.values()
    stepped, step = [], opt.step

    def recording(*args, **kwargs):
        grads = [p.grad for group in opt.param_groups for p in group["params"]]
        stepped.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        return step(*args, **kwargs)

    opt.step = recording
    trainer.fit()
    assert len(stepped) == 3 and all(n == pytest.approx(1e-3, rel=1e-5) for n in stepped), stepped
