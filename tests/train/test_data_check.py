"""The data are checked against the model once, before anything is written, with errors
naming the dataset and the split; the training steps then skip the value scan."""

import pytest
import torch

import dgm
from dgm.data import DataConfig, TensorData
from dgm.train import Trainer, TrainingDiverged, train
from helpers import DiagonalGaussian, GaussianConfig, gaussian_data, quiet_config


def test_data_outside_the_support_fail_before_the_run_directory_is_written(tmp_path):
    out = tmp_path / "run"
    grey = DataConfig("digits")  # grey levels in [0, 1]: not the Bernoulli decoder's {0, 1}
    with pytest.raises(ValueError, match=r"train split of dataset 'digits'.*outside the support"):
        train("vae", grey, out, quiet_config(), progress=False, latent_dim=2, hidden_sizes=(8,))
    assert not (out / "config.json").exists()


def test_labels_beyond_the_models_classes_fail_up_front(tmp_path):
    out = tmp_path / "run"
    data = DataConfig("digits", binarize="static")  # labels 0..9
    with pytest.raises(
        ValueError,
        match=r"train split of dataset 'digits'.*labels outside 0\.\.2 \(the data have 10 "
        r"classes: --num-classes 10\)",
    ):
        train("vae", data, out, quiet_config(), progress=False, latent_dim=2, num_classes=3)
    assert not (out / "config.json").exists()
    with pytest.raises(ValueError, match=r"outside 0\.\.8 \(the data have 10 classes: --num"):
        train("vae", data, out, quiet_config(), progress=False, latent_dim=2, num_classes=9)


def test_a_bad_validation_split_is_named():
    model = DiagonalGaussian((2,), GaussianConfig())
    valid = TensorData(torch.zeros(10, 3), name="wide")
    with pytest.raises(ValueError, match=r"valid split of dataset 'wide'.*expected \(batch, 2\)"):
        Trainer(model, gaussian_data(), valid, quiet_config(), progress=False)


def test_steps_skip_the_value_scan_during_fit_and_restore_it_after():
    model = DiagonalGaussian((2,), GaussianConfig())
    Trainer(model, gaussian_data(), None, quiet_config(steps=3), progress=False).fit()
    assert model.seen_check_values == [False] * 3 and model.check_values is True

    model = DiagonalGaussian((2,), GaussianConfig(nan_at_update=2))
    with pytest.raises(TrainingDiverged):
        Trainer(model, gaussian_data(), None, quiet_config(steps=3), progress=False).fit()
    assert model.seen_check_values == [False] * 2 and model.check_values is True


def test_the_check_reads_every_chunk_to_the_last_example(monkeypatch):
    """Chunks of 4 over 10 examples: a bad value in the last, short chunk is found and
    named by its examples (one chunk, as every split here is, hides a skipped tail)."""
    from dgm.train import data_check

    monkeypatch.setattr(data_check, "CHECK_CHUNK", 4)
    model = dgm.create("fvsbn", (3,))
    x = torch.zeros(10, 3)
    x[9, 1] = 0.5  # not binary
    with pytest.raises(ValueError, match=r"examples 8\.\.9"):
        data_check.check_splits(
            model, {"train": TensorData(x)}, device=torch.device("cpu"), seed=0, batch_size=2
        )
