"""``dgm.run_dir.Run``, the one reader of an existing run: its weights choice (best, EMA,
raw), the c of examples through ``Conditioning.pick``, the data rebuilt once, and its
one-line refusals. Runs are written by hand (config.json and three weights files that
differ), so each choice is visible in the weights, without training."""

import pytest
import torch

import dgm
from dgm import run_dir as rd
from dgm.data import DataConfig
from dgm.run_dir import Run

LOWRES = DataConfig(name="digits", binarize="static", condition="lowres", lowres_factor=2)


def write_run(path, data, **config):
    """A vae run on ``data`` whose model, EMA and best weights are filled with 0, 1 and 2."""
    shape = data.load("test").event_shape
    model = dgm.create("vae", tuple(shape), latent_dim=2, hidden_sizes=(8,), **config)
    path.mkdir(parents=True)
    rd.write_json(path / rd.CONFIG, rd.run_config(model, data, value_range=(0.0, 1.0)))
    for value, name in enumerate((rd.WEIGHTS, rd.EMA_WEIGHTS, rd.BEST_WEIGHTS)):
        state = {k: torch.full_like(v, float(value)) for k, v in model.state_dict().items()}
        rd.save_weights(path / name, model, step=7, state=state)
    rd.append_metrics(path / rd.METRICS, {"step": 7, "loss": 1.5})
    return path


def first_weight(model):
    return float(next(iter(model.state_dict().values())).flatten()[0])


def test_model_loads_the_ema_unless_asked_for_the_raw_or_best_weights(tmp_path):
    run = Run.open(write_run(tmp_path / "r", DataConfig(name="digits", binarize="static")))
    assert first_weight(run.model(device="cpu")) == 1.0  # the EMA by default
    assert first_weight(run.model(ema=False, device="cpu")) == 0.0  # --no-ema: the raw
    assert first_weight(run.model(best=True, device="cpu")) == 2.0
    assert first_weight(dgm.load(run.path, ema=False)) == 0.0  # dgm.load goes through Run
    assert not run.model(device="cpu").training


def test_conditions_are_the_examples_contexts_through_pick(tmp_path):
    run = Run.open(write_run(tmp_path / "r", LOWRES, context_shape=(1, 4, 4)))
    data = run.data("test")
    index = torch.tensor([3, 0, 5])
    c = run.conditions("test", index)
    assert c is not None and torch.equal(c, data.context[index])  # the contexts, in order
    assert run.conditions("test").shape == (len(data), 1, 4, 4)


def test_a_context_model_on_data_without_context_is_refused_not_given_none(tmp_path):
    path = write_run(tmp_path / "r", LOWRES, context_shape=(1, 4, 4))
    config = rd.read_json(path / rd.CONFIG)
    config["data"]["condition"] = None  # the data as saved carry no context
    rd.write_json(path / rd.CONFIG, config)
    with pytest.raises(ValueError, match="the data carry none"):
        Run.open(path).conditions("test", torch.arange(2))


def test_an_unconditional_run_has_no_c_and_a_class_run_the_labels(tmp_path):
    data = DataConfig(name="digits", binarize="static")
    assert Run.open(write_run(tmp_path / "u", data)).conditions("test") is None
    run = Run.open(write_run(tmp_path / "k", data, num_classes=10))
    assert torch.equal(run.conditions("test", torch.arange(4)), run.data("test").y[:4])


def test_the_saved_data_are_rebuilt_once_and_the_config_read(tmp_path):
    run = Run.open(write_run(tmp_path / "r", DataConfig(name="digits", binarize="static")))
    assert run.data("test") is run.data("test")  # cached
    assert run.data("train") is not run.data("test")
    assert run.value_range == (0.0, 1.0) and run.vocab is None and run.name == "vae"
    assert run.metrics() == [{"step": 7, "loss": 1.5}]
    with pytest.raises(ValueError, match=r"examples of shape .* but the model takes"):
        run.data("test", "eight_gaussians")


def test_data_named_by_folder_or_as_the_runs_own_dataset(tmp_path):
    """The cache tells folders apart (two files of the run's dataset give their own
    examples), and the run's own dataset named outright is the saved data, its options
    (a train fraction) included."""
    import numpy as np

    zeros, ones = tmp_path / "zeros.npy", tmp_path / "ones.npy"
    np.save(zeros, np.zeros((40, 2), dtype=np.float32))
    np.save(ones, np.ones((40, 2), dtype=np.float32))
    saved = DataConfig(name="tensors", root=str(zeros), train_fraction=0.5)
    run = Run.open(write_run(tmp_path / "r", saved))
    assert (run.data("test", "tensors", str(zeros)).x == 0).all()
    assert (run.data("test", "tensors", str(ones)).x == 1).all()
    assert len(run.data("train", "tensors")) == len(run.data("train")) == len(saved.load("train"))
    assert len(saved.load("train")) < len(DataConfig(name="tensors", root=str(zeros)).load("train"))


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p / "nowhere", "nowhere does not exist: give a run directory"),
        (lambda p: p, "has no config.json: give a run directory"),
        (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "is a file, not a run"),
    ],
)
def test_open_refuses_what_is_not_a_run_in_one_line(tmp_path, make, words):
    with pytest.raises(ValueError, match=words) as e:
        Run.open(make(tmp_path))
    assert "\n" not in str(e.value)


def test_the_cli_gives_a_context_model_its_examples_contexts(tmp_path, capsys):
    """dgm interpolate encodes two test examples given their contexts (Run.conditions):
    without them a context-conditional VAE refuses to encode."""
    from dgm.cli import main

    path = write_run(tmp_path / "r", LOWRES, context_shape=(1, 4, 4))
    out = tmp_path / "strip.png"
    argv = ["interpolate", str(path), "--steps", "3", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert out.is_file()
    from dgm.cli.common import examples

    run = Run.open(path)  # rows 3 and 5 (not the first two): each with its own context
    _, c = examples(run, "test", [3, 5], "cpu", 0)
    torch.testing.assert_close(c, run.conditions("test", torch.tensor([3, 5]), device="cpu"))
    assert not torch.equal(c, run.conditions("test", torch.tensor([0, 1]), device="cpu"))
