"""Run directories load without executing code, reject foreign or corrupt files with a
message naming the file, and are written atomically."""

import json
import os

import pytest
import torch

import dgm
from dgm import run_dir as rd
from dgm.train import checkpoint as ckpt


@pytest.fixture
def run_dir(tmp_path):
    torch.manual_seed(0)
    model = dgm.create("vae", (1, 8, 8), latent_dim=2, hidden_sizes=(8,))
    rd.write_json(tmp_path / rd.CONFIG, rd.run_config(model))
    rd.save_weights(tmp_path / rd.WEIGHTS, model, step=7)
    return tmp_path, model


def test_round_trip_gives_the_same_log_prob_in_eval_mode(run_dir):
    path, model = run_dir
    loaded = dgm.load(path)
    assert not loaded.training and rd.weights_step(path / rd.WEIGHTS) == 7
    x = torch.bernoulli(torch.full((5, 1, 8, 8), 0.3))
    torch.manual_seed(1)
    a = model.log_prob(x)
    torch.manual_seed(1)
    assert torch.equal(a, loaded.log_prob(x))


def test_weights_from_another_model_are_refused(run_dir, tmp_path_factory):
    path, _ = run_dir
    other = dgm.create("gmvae", (1, 8, 8), latent_dim=2, hidden_sizes=(8,), num_components=3)
    rd.save_weights(path / rd.WEIGHTS, other, step=1)
    with pytest.raises(ValueError, match="weights of model 'gmvae', not 'vae'"):
        dgm.load(path)


def test_weights_of_another_shape_are_refused(run_dir):
    path, _ = run_dir
    bigger = dgm.create("vae", (1, 8, 8), latent_dim=3, hidden_sizes=(8,))
    rd.save_weights(path / rd.WEIGHTS, bigger, step=1)
    with pytest.raises(ValueError, match=r"does not match the model in config\.json"):
        dgm.load(path)


def test_corrupt_or_missing_files_name_the_file(run_dir):
    path, _ = run_dir
    blob = (path / rd.WEIGHTS).read_bytes()
    (path / rd.WEIGHTS).write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=r"model\.safetensors is not a readable safetensors file"):
        dgm.load(path)
    (path / rd.WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        dgm.load(path)
    (path / rd.CONFIG).write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        dgm.load(path)
    with pytest.raises(ValueError, match="does not exist: give a run directory"):
        dgm.load(path / "nowhere")


def test_trainer_state_loads_without_unpickling_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"x": Evil()}, tmp_path / ckpt.TRAINER_STATE)
    with pytest.raises(ValueError, match="not a readable trainer state"):
        ckpt.load_trainer_state(tmp_path / ckpt.TRAINER_STATE)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.json"
    rd.write_json(target, {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600

    def explode(p):
        p.write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        rd.atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_a_checkpoint_without_a_new_best_carries_the_best_weights_it_commits(tmp_path):
    """Validation at step 10, a stop at 13 (a checkpoint without validation, so without a
    new best): the step-13 checkpoint names the best weights of step 10 among its files
    (carried, hashed, verified on resume), not only the top-level copy from before."""
    from dgm.train import Trainer
    from helpers import (
        DiagonalGaussian,
        GaussianConfig,
        gaussian_data,
        quiet_config,
        registered,
        stopping_at,
    )

    model = DiagonalGaussian((2,), GaussianConfig())
    cfg = quiet_config(steps=20, lr=0.05, eval_every=10, checkpoint_every=5)
    with registered(), stopping_at(13):
        Trainer(model, gaussian_data(), gaussian_data(), cfg, tmp_path, progress=False).fit()
    found = rd.committed(tmp_path)
    assert found.step == 13 and rd.BEST_WEIGHTS in found.files
    assert (found.folder / rd.BEST_WEIGHTS).is_file()
    ckpt.verify(found)  # the hash it names is the file's
