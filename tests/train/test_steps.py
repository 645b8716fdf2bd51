"""What one training step promises: phase metrics averaged per call, per-phase optimiser
settings under the schedule, fused AdamW, weight decay on the matrices only (or all), the
step handed to the model, a NaN gradient refused before it changes a parameter,
closed-form fits without autograd over every example, the progress bar's names and the
cheaper validation score."""

import math

import pytest
import torch
from torch import nn

import dgm.train.optim as optim
from dgm import run_dir as rd
from dgm.config import to_dict
from dgm.data import TensorData
from dgm.evaluate.likelihood import evaluate
from dgm.model import Loss
from dgm.train import TrainConfig, Trainer, TrainingDiverged
from dgm.train.config import saved_config
from helpers import (
    ConstantCritic,
    CriticConfig,
    DiagonalGaussian,
    GaussianConfig,
    RecordingConfig,
    RecordingFit,
    ToyGAN,
    ToyGANConfig,
    gaussian_data,
    quiet_config,
    registered,
)


def test_a_repeated_phase_logs_the_mean_of_its_calls_not_their_sum(tmp_path):
    model = ConstantCritic((1,), CriticConfig(critic_steps=3))
    cfg = quiet_config(steps=4, log_every=2, checkpoint_every=0)
    with registered():
        Trainer(model, gaussian_data(d=1), None, cfg, tmp_path, progress=False).fit()
    records = [r for r in rd.read_metrics(tmp_path / rd.METRICS) if "critic/loss" in r]
    assert [r["step"] for r in records] == [2, 4]
    for r in records:
        assert r["critic/loss"] == pytest.approx(2.0)  # summed over 3 calls it would be 6
        assert r["critic/call"] == pytest.approx(1.0)  # mean of 0, 1, 2
        assert r["critic/grad_norm"] == pytest.approx(2.0)
        assert r["generator/loss"] == pytest.approx(5.0)
        assert r["generator/grad_norm"] == pytest.approx(3.0)


def test_per_phase_group_dicts_override_the_defaults_and_the_schedule_scales_them():
    model = ToyGAN((1,), ToyGANConfig(critic_steps=1))
    d_weight, d_bias = model.discriminator.weight, model.discriminator.bias
    model.param_groups = lambda: {
        "discriminator": [
            {"params": [d_weight], "lr": 4e-3, "betas": (0.5, 0.9), "weight_decay": 0.1},
            {"params": [d_bias]},  # the trainer's defaults
        ],
        "generator": list(model.generator.parameters()),
    }
    cfg = quiet_config(steps=6, lr=1e-3, warmup_steps=4, weight_decay=0.0, adam_betas=(0.8, 0.95))
    trainer = Trainer(model, gaussian_data(d=1), None, cfg, progress=False)
    weight_group, bias_group = trainer.optimizers["discriminator"].param_groups
    assert weight_group["params"] == [d_weight] and bias_group["params"] == [d_bias]
    assert weight_group["betas"] == (0.5, 0.9) and weight_group["weight_decay"] == 0.1
    assert bias_group["betas"] == (0.8, 0.95) and bias_group["weight_decay"] == 0.0  # config's
    assert weight_group["initial_lr"] == 4e-3 and bias_group["initial_lr"] == 1e-3
    (gen_group,) = trainer.optimizers["generator"].param_groups
    assert gen_group["betas"] == (0.8, 0.95)
    seen = []
    original = trainer._train_step

    def record():
        original()
        seen.append((weight_group["lr"], bias_group["lr"], gen_group["lr"]))

    trainer._train_step = record
    trainer.fit()
    assert len(seen) == 6 and cfg.lr_factor(0) == 0.25  # warm-up, then the cosine
    for step, lrs in enumerate(seen):
        factor = cfg.lr_factor(step)
        assert lrs == pytest.approx((4e-3 * factor, 1e-3 * factor, 1e-3 * factor))


def test_the_logged_lr_is_the_one_the_step_used(tmp_path):
    """Each log line's lr is lr * lr_factor(step - 1): the rate of the step that ended at
    ``step`` (warm-up then cosine, so it differs from step to step)."""
    cfg = quiet_config(steps=8, lr=1e-2, warmup_steps=3, log_every=1)
    model = DiagonalGaussian((2,), GaussianConfig())
    with registered():  # a run directory needs a registered model
        Trainer(model, gaussian_data(), None, cfg, tmp_path, progress=False).fit()
    logged = {r["step"]: r["lr"] for r in rd.read_metrics(tmp_path / rd.METRICS) if "lr" in r}
    assert sorted(logged) == list(range(1, 9))
    for step, lr in logged.items():
        assert lr == pytest.approx(1e-2 * cfg.lr_factor(step - 1), rel=1e-6), step


def test_fused_adamw_is_used_on_the_cpu_and_agrees_with_the_unfused_one(monkeypatch):
    states, flags = [], []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(optim, "_has_fused_adamw", lambda device, dtype: False)
        torch.manual_seed(0)
        model = DiagonalGaussian((3,), GaussianConfig())
        cfg = quiet_config(steps=30, lr=0.05, weight_decay=0.01, grad_clip=5.0)
        trainer = Trainer(model, gaussian_data(d=3), None, cfg, progress=False)
        flags.append(bool(trainer.optimizers["main"].defaults["fused"]))
        trainer.fit()
        states.append(model.state_dict())
    assert flags == [True, False]
    for k in states[0]:
        assert torch.allclose(states[0][k].double(), states[1][k].double(), atol=1e-5), k
    assert not torch.allclose(states[0]["loc"], torch.zeros(3), atol=0.5)  # it trained


def test_the_model_sees_the_training_step_and_a_resume_continues_it(tmp_path):
    cfg = quiet_config(steps=10, eval_every=3, checkpoint_every=4)
    valid = gaussian_data(n=64, seed=1)
    torch.manual_seed(0)
    model = DiagonalGaussian((2,), GaussianConfig())
    trainer = Trainer(model, gaussian_data(), valid, cfg, tmp_path, progress=False)
    original = trainer._train_step

    def stop_after_6():
        original()
        if trainer.step + 1 == 6:
            trainer.request_stop()

    trainer._train_step = stop_after_6
    with registered():
        trainer.fit()
    assert model.seen_steps == [0, 1, 2, 3, 4, 5]  # evaluations (steps 3, 6) added nothing
    resumed = DiagonalGaussian((2,), GaussianConfig())
    trainer = Trainer(resumed, gaussian_data(), valid, cfg, tmp_path, progress=False)
    with registered():
        trainer.resume()
        assert resumed.training_step == 6
        trainer.fit()
    assert resumed.seen_steps == [6, 7, 8, 9]


def test_a_nan_gradient_is_refused_before_it_changes_a_parameter(tmp_path):
    model = DiagonalGaussian((2,), GaussianConfig(nan_grad_at_update=13))
    with registered(), pytest.raises(TrainingDiverged) as err:
        Trainer(model, gaussian_data(), None, quiet_config(), tmp_path, progress=False).fit()
    message = str(err.value)
    assert "gradient" in message and "at step 13" in message
    assert "the last good checkpoint (step 10) is kept" in message
    assert "lower --lr or set --grad-clip" in message
    assert rd.weights_step(tmp_path / rd.WEIGHTS) == 10
    for k in ("loc", "log_scale"):  # exactly the values the bad step saw
        assert torch.equal(model.state_dict()[k], model.before_bad_step[k]), k
    records = rd.read_metrics(tmp_path / rd.METRICS)
    assert [r["step"] for r in records] == [5, 10]
    assert all(math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in records)


def test_a_divergence_before_the_first_checkpoint_says_none_was_written(tmp_path):
    model = DiagonalGaussian((2,), GaussianConfig(nan_grad_at_update=3))
    cfg = quiet_config(grad_clip=1.0)
    with registered(), pytest.raises(TrainingDiverged) as err:
        Trainer(model, gaussian_data(), None, cfg, tmp_path, progress=False).fit()
    assert "no checkpoint was written yet" in str(err.value)
    assert "lower --lr or --grad-clip" in str(err.value)
    assert not (tmp_path / rd.WEIGHTS).exists()


def test_one_fit_step_sees_every_example_once_without_autograd():
    n = 50  # batches of 16: the last one is short
    data = TensorData(torch.arange(n, dtype=torch.float32)[:, None])
    model = RecordingFit((1,), RecordingConfig())
    Trainer(model, data, None, quiet_config(steps=2, batch_size=16), progress=False).fit()
    assert model.grad_enabled == [False, False]
    for seen in model.seen:
        assert sorted(seen.tolist()) == list(range(n))


def test_the_progress_bar_shows_the_loss_and_the_models_first_two_metrics(capsys):
    class Named(DiagonalGaussian):
        def loss(self, x, c=None, *, phase="main"):
            out = super().loss(x, c, phase=phase)
            v = out.value.detach()
            return Loss(out.value, {"alpha": v, "beta": v, "gamma": v})

    model = Named((2,), GaussianConfig())
    Trainer(model, gaussian_data(), None, quiet_config(steps=5), progress=True).fit()
    err = capsys.readouterr().err
    assert "loss=" in err and "alpha=" in err and "beta=" in err
    assert "gamma=" not in err and "nelbo" not in err and "grad_norm" not in err


def test_periodic_validation_reports_the_models_validation_score():
    class CheapScore(DiagonalGaussian):
        def validation_log_prob(self, x, c=None):
            return self.log_prob(x, c) - 1.0  # a score that differs from the likelihood

    valid = gaussian_data(n=64, seed=1)
    model = CheapScore((2,), GaussianConfig())
    cfg = quiet_config(steps=10, eval_every=10)
    last = Trainer(model, gaussian_data(), valid, cfg, progress=False).fit()
    full = evaluate(model, valid)["nll"]
    assert last["valid/nll"] == pytest.approx(full + 1.0, abs=1e-5)
    assert evaluate(model, valid, validation=True)["bound"] == "validation"
    with pytest.raises(ValueError, match="exclude each other"):
        evaluate(model, valid, validation=True, iw_samples=2)


class GaussianWithLayers(DiagonalGaussian):
    """A DiagonalGaussian that also holds (unused) layers of every kind weight decay tells
    apart: an embedding table, a linear map with a bias, a layer norm, a convolution."""

    def __init__(self, event_shape, config: GaussianConfig) -> None:
        super().__init__(event_shape, config)
        self.embed = nn.Embedding(4, 3)
        self.linear = nn.Linear(3, 3)
        self.norm = nn.LayerNorm(3)
        self.conv = nn.Conv1d(2, 2, 3)
        with torch.no_grad():  # nonzero everywhere, so any decay shows
            for p in self.parameters():
                p.add_(torch.rand_like(p) + 0.5)


def decayed_after_one_step(weight_decay_on: str) -> set[str]:
    """The names of the parameters one AdamW step with zero gradients shrinks: with a zero
    gradient Adam's own update is 0, so only the decoupled decay p <- (1 - lr wd) p moves
    a parameter, by exactly that factor."""
    torch.manual_seed(0)
    model = GaussianWithLayers((2,), GaussianConfig())
    cfg = quiet_config(lr=0.1, weight_decay=0.5, weight_decay_on=weight_decay_on)
    opt = Trainer(model, gaussian_data(d=2), None, cfg, progress=False).optimizers["main"]
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    shrunk = set()
    for k, p in model.named_parameters():
        if torch.allclose(p, before[k] * (1 - 0.1 * 0.5), rtol=1e-6, atol=0):
            shrunk.add(k)
        else:
            assert torch.equal(p, before[k]), f"{k} moved, but not by the decay"
    return shrunk


def test_weight_decay_shrinks_only_the_matrices_by_default():
    assert TrainConfig().weight_decay_on == "matrices"
    assert decayed_after_one_step("matrices") == {"linear.weight", "conv.weight"}


def test_weight_decay_on_all_shrinks_every_parameter_again():
    every = {k for k, _ in GaussianWithLayers((2,), GaussianConfig()).named_parameters()}
    assert decayed_after_one_step("all") == every


def test_a_group_with_its_own_weight_decay_is_split_into_matrices_and_the_rest():
    linear, norm = nn.Linear(3, 3), nn.LayerNorm(3)
    entries = [
        {"params": [linear.weight, linear.bias], "weight_decay": 0.1, "lr": 2e-3},
        {"params": list(norm.parameters())},  # only 1-D: no decay, whatever the default
        {"params": [nn.Parameter(torch.ones(2, 2))], "weight_decay": 0.0},
    ]
    opt = optim.build_optimizer("main", entries, quiet_config(weight_decay=0.3))
    got = [
        ([tuple(p.shape) for p in g["params"]], g["weight_decay"], g["lr"])
        for g in opt.param_groups
    ]
    assert got == [
        ([(3, 3)], 0.1, 2e-3),
        ([(3,)], 0.0, 2e-3),
        ([(3,), (3,)], 0.0, 1e-3),
        ([(2, 2)], 0.0, 1e-3),
    ]
    # a group's own weight decay is split even when the default is none
    opt = optim.build_optimizer("main", entries[:1], quiet_config(weight_decay=0.0))
    got = [([tuple(p.shape) for p in g["params"]], g["weight_decay"]) for g in opt.param_groups]
    assert got == [([(3, 3)], 0.1), ([(3,)], 0.0)]


def test_a_config_saved_before_weight_decay_on_resumes_decaying_everything():
    old = to_dict(quiet_config(weight_decay=0.1))
    del old["weight_decay_on"]
    assert saved_config(old).weight_decay_on == "all"
    new = to_dict(quiet_config(weight_decay=0.1))
    assert saved_config(new) == quiet_config(weight_decay=0.1)  # a new run keeps its choice


def test_logged_metrics_are_the_float32_means_of_the_calls_since_the_last_log(tmp_path):
    """The stacked running sums log, bit for bit, what summing each metric in float32 call
    by call and dividing by the calls gives."""
    model = DiagonalGaussian((3,), GaussianConfig())
    seen: list[dict[str, torch.Tensor]] = []
    loss = model.loss

    def recording_loss(*args, **kwargs):
        out = loss(*args, **kwargs)
        seen.append({"loss": out.value, **out.metrics})
        return out

    model.loss = recording_loss
    cfg = quiet_config(steps=7, log_every=3, checkpoint_every=0)
    with registered():
        Trainer(model, gaussian_data(d=3), None, cfg, tmp_path, progress=False).fit()
    records = rd.read_metrics(tmp_path / rd.METRICS)
    assert [r["step"] for r in records] == [3, 6, 7]
    for record, calls in zip(records, (seen[0:3], seen[3:6], seen[6:7]), strict=True):
        for key in calls[0]:
            total = calls[0][key].detach().float().clone()
            for call in calls[1:]:
                total = total + call[key].detach().float()
            assert record[key] == (total / len(calls)).item(), key


def test_a_run_stopped_between_logs_logs_the_steps_since_the_last_one(tmp_path):
    """Stopped after step 5 of 10 with a log every 4: the metrics of step 5 are logged too,
    the mean of that one call."""
    model = DiagonalGaussian((3,), GaussianConfig())
    seen: list[float] = []
    loss = model.loss
    trainers: list[Trainer] = []

    def stopping_loss(*args, **kwargs):
        out = loss(*args, **kwargs)
        seen.append(out.value.item())
        if len(seen) == 5:
            trainers[0].request_stop()
        return out

    model.loss = stopping_loss  # before the trainer takes it
    cfg = quiet_config(steps=10, log_every=4, checkpoint_every=0)
    trainers.append(Trainer(model, gaussian_data(d=3), None, cfg, tmp_path, progress=False))
    with registered():
        last = trainers[0].fit()
    records = rd.read_metrics(tmp_path / rd.METRICS)
    assert [r["step"] for r in records] == [4, 5] and last["interrupted"]
    assert records[-1]["loss"] == pytest.approx(seen[4], rel=1e-6)


def test_the_gradient_norm_is_torchs_total_norm_bit_for_bit():
    trainer = Trainer(
        DiagonalGaussian((3,), GaussianConfig()), gaussian_data(d=3), None, quiet_config(), None,
        progress=False,
    )  # fmt: skip
    g = torch.Generator().manual_seed(0)
    same = [torch.randn(shape, generator=g) * 10 for shape in [(3,), (40, 7), (1,), (5, 2, 2)]]
    mixed = [same[0].double(), *same[1:]]  # two dtypes: torch's grouping path
    for phase, grads in (("same", same), ("mixed", mixed)):
        expected = torch.nn.utils.get_total_norm(grads)
        assert torch.equal(trainer._grad_norm(phase, grads), expected), phase
        assert torch.equal(trainer._grad_norm(phase, grads), expected), phase  # decided once
    assert trainer._one_norm == {"same": True, "mixed": False}


def test_periodic_work_is_checked_exactly_at_the_steps_where_some_is_due():
    trainer = Trainer(
        DiagonalGaussian((3,), GaussianConfig()), gaussian_data(d=3), None, quiet_config(), None,
        progress=False,
    )  # fmt: skip
    for every in [(0, 0, 0, 0), (5, 0, 0, 0), (3, 4, 0, 7), (1, 0, 0, 0), (6, 6, 9, 30)]:
        trainer.config = quiet_config(steps=23)
        due_steps = [s for s in range(1, 24) if any(trainer_due(trainer, s, n) for n in every)]
        trainer.step, checked = 0, []
        due = trainer._next_due(every)
        while trainer.step < 23:
            trainer.step += 1
            if trainer.step >= due:
                checked.append(trainer.step)
                due = trainer._next_due(every)
        assert set(due_steps) <= set(checked) <= {*due_steps, 23}, every  # 23: the last


def trainer_due(trainer: Trainer, step: int, every: int) -> bool:
    trainer.step = step
    return trainer._due(every)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"sample_count": -1}, "sample_count must be >= 0"),
        ({"steps": 0}, "steps must be positive"),
        ({"batch_size": 0}, "batch_size must be positive"),
        ({"workers": -1}, "workers must be >= 0"),
        ({"patience": 2, "eval_every": 0}, "patience 2 counts evaluations"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"grad_clip": 0.0}, "grad_clip must be positive"),
        ({"ema_decay": 1.0}, r"ema_decay must lie in \[0, 1\)"),  # an EMA that never moves
        ({"ema_decay": -0.1}, r"ema_decay must lie in \[0, 1\)"),
        ({"min_lr_ratio": 1.01}, r"min_lr_ratio must lie in \[0, 1\]"),
        ({"min_lr_ratio": -0.01}, r"min_lr_ratio must lie in \[0, 1\]"),
    ],
)
def test_train_config_refuses_each_value_past_its_bound(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)


def test_train_config_takes_each_bound_that_is_allowed():
    for ok in ({"sample_count": 0}, {"steps": 1}, {"workers": 0}, {"ema_decay": 0.0},
               {"ema_decay": 0.9999}, {"min_lr_ratio": 0.0}, {"min_lr_ratio": 1.0},
               {"patience": 2, "eval_every": 5}):  # fmt: skip
        TrainConfig(**ok)


def test_validation_and_pictures_see_the_model_in_eval_mode(tmp_path, monkeypatch):
    """Dropout, batch norm and the like must be off while the trainer scores the valid
    split and draws its pictures, and back on for the next step."""
    from dgm.registry import register, unregister
    from dgm.train import pictures

    modes: dict[str, list[bool]] = {"scored": [], "drawn": [], "trained": []}

    class Recording(DiagonalGaussian):
        def log_prob(self, x, c=None):
            modes["trained" if torch.is_grad_enabled() else "scored"].append(self.training)
            return super().log_prob(x, c)

        def sample(self, n, c=None, **kw):
            modes["drawn"].append(self.training)
            return self.dist().sample((n,))

    monkeypatch.setattr(pictures, "save_samples", lambda *a, **kw: None)
    cfg = quiet_config(steps=4, eval_every=2, sample_every=2, checkpoint_every=0)
    model = Recording((2,), GaussianConfig())
    register("recording_gaussian", GaussianConfig)(Recording)
    try:
        Trainer(model, gaussian_data(), gaussian_data(), cfg, tmp_path, progress=False).fit()
    finally:
        unregister("recording_gaussian")
    assert modes["scored"] and not any(modes["scored"])
    assert modes["drawn"] and not any(modes["drawn"])
    assert modes["trained"] and all(modes["trained"]) and model.training
