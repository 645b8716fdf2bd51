"""Training from a shard directory (``--data shards``): a run streamed by DataLoader workers
that is stopped and resumed ends with the same weights, bit for bit, as one that was not."""

import torch
from safetensors.torch import load_file

from dgm import run_dir as rd
from dgm.data import DataConfig, TensorData
from dgm.data.shards import convert
from dgm.train import TrainConfig, Trainer, resume, train


def test_a_streamed_run_stopped_and_resumed_ends_bit_identical(tmp_path, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    probs = TensorData(torch.rand(90, 1, 4, 4, generator=gen), dynamic_binarize=True)
    convert(lambda split: probs, tmp_path / "shards", shard_size=20, splits=("train",))
    data = DataConfig("shards", root=str(tmp_path / "shards"))
    cfg = TrainConfig(  # 16 per batch over 90 examples: epochs end mid-run, with short batches
        steps=14, batch_size=16, eval_every=0, sample_every=0, log_every=7,
        checkpoint_every=7, device="cpu", warmup_steps=2, workers=1,
    )  # fmt: skip
    kw = dict(latent_dim=2, hidden_sizes=(8,))
    train("vae", data, tmp_path / "whole", cfg, progress=False, **kw)

    original = Trainer._train_step

    def stop_at_5(self):
        original(self)
        if self.step + 1 == 5:
            self.request_stop()

    monkeypatch.setattr(Trainer, "_train_step", stop_at_5)
    _, last = train("vae", data, tmp_path / "cut", cfg, progress=False, **kw)
    assert last["interrupted"] and rd.weights_step(tmp_path / "cut" / rd.WEIGHTS) == 5
    monkeypatch.setattr(Trainer, "_train_step", original)
    resume(tmp_path / "cut", progress=False)

    whole = load_file(tmp_path / "whole" / rd.WEIGHTS)
    cut = load_file(tmp_path / "cut" / rd.WEIGHTS)
    assert whole.keys() == cut.keys()
    for k in whole:
        assert torch.equal(whole[k], cut[k]), k
