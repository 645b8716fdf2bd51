"""Training from a shard directory (``--data shards``): a run streamed by DataLoader workers
that is stopped and resumed ends with the same weights, bit for bit, as one that was not."""

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import processes
from dgm import run_dir as rd
from dgm.data import DataConfig, TensorData
from dgm.data.shards import ShardData, convert
from dgm.evaluate.likelihood import evaluate
from dgm.train import TrainConfig, Trainer, resume, train
from helpers import DiagonalGaussian, GaussianConfig, stopping_at


def test_a_streamed_run_stopped_and_resumed_ends_bit_identical(tmp_path):
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

    with stopping_at(5):
        _, last = train("vae", data, tmp_path / "cut", cfg, progress=False, **kw)
    assert last["interrupted"] and rd.weights_step(tmp_path / "cut" / rd.WEIGHTS) == 5
    resume(tmp_path / "cut", progress=False)

    whole = load_file(tmp_path / "whole" / rd.WEIGHTS)
    cut = load_file(tmp_path / "cut" / rd.WEIGHTS)
    assert whole.keys() == cut.keys()
    for k in whole:
        assert torch.equal(whole[k], cut[k]), k


# 47 float64 examples, batches of 2 x 5: 5 per epoch, the last of 7 rows (4 + 3 on 2 ranks)
ROWS = TrainConfig(
    steps=9, batch_size=5, lr=0.05, warmup_steps=2, eval_every=0, sample_every=0,
    log_every=0, checkpoint_every=0, device="cpu", workers=0, rank_split="rows",
)  # fmt: skip


def recording():
    """A float64 DiagonalGaussian whose training loss calls record (loss, rows)."""
    torch.manual_seed(0)
    model = DiagonalGaussian((3,), GaussianConfig())
    losses, loss = [], model.loss

    def record(x, c=None, *, phase="main"):
        out = loss(x, c, phase=phase)
        if model.training:
            losses.append((out.value.item(), len(x)))
        return out

    model.loss = record
    return model, losses


SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path[:0] = [{tests!r}, {here!r}]
    from helpers import DiagonalGaussian, GaussianConfig, registered
    from dgm.data.shards import ShardData
    from dgm.evaluate.likelihood import evaluate
    from dgm.train import TrainConfig, Trainer, distributed
    from dgm.train.stream import ShardBatchStream
    from test_streaming import ROWS, recording

    shards, out = sys.argv[1], sys.argv[2]
    data = ShardData(shards, "train")
    rank, world, _ = distributed.setup(torch.device("cpu"))
    # one epoch of this rank through 2 DataLoader workers: the example ids it sees
    stream = ShardBatchStream(data, 8, seed=4, rank=rank, world_size=world, workers=2)
    ids = []
    while True:
        y = stream.next().y  # y_i = i
        if stream.epoch > 0:
            break
        ids += y.tolist()
    torch.save(ids, f"{{out}}/ids{{rank}}.pt")

    step = Trainer._train_step

    def fit(run, stop=None, resume=False):
        torch.manual_seed(0)
        model = DiagonalGaussian((3,), GaussianConfig(noise=0.1))
        cfg = TrainConfig(steps=12, batch_size=8, lr=0.05, warmup_steps=2, eval_every=0,
                          sample_every=0, log_every=0, checkpoint_every=0, device="cpu",
                          workers=2)
        trainer = Trainer(model, data, None, cfg, f"{{out}}/{{run}}", progress=False)
        if resume:
            trainer.resume()

        def stopping(self):
            step(self)
            if self.step + 1 == stop:
                self.request_stop()

        Trainer._train_step = stopping
        trainer.fit()
        return model

    with registered():  # weights files name the model
        whole = fit("whole")
        fit("cut", stop=5)  # 70 examples / 2 ranks / 8 per batch: the epoch ends at step 5
        resumed = fit("cut", resume=True)
    torch.save({{"whole": whole.state_dict(), "resumed": resumed.state_dict(),
                "nll": evaluate(whole, data, batch_size=16, rank=rank, world_size=world)["nll"]}},
               f"{{out}}/run{{rank}}.pt")

    # --rank-split rows: one epoch's ids through 2 workers, then the losses of 9 steps
    rows = ShardData(sys.argv[3], "train")
    stream = ShardBatchStream(rows, 4, seed=4, rank=rank, world_size=world, workers=2,
                              rank_split="rows")
    ids = []
    while True:
        y = stream.next().y
        if stream.epoch > 0:
            break
        ids += y.tolist()
    torch.set_default_dtype(torch.float64)
    model, losses = recording()
    Trainer(model, rows, None, ROWS, progress=False).fit()
    torch.save({{"ids": ids, "losses": losses, "state": model.state_dict()}},
               f"{{out}}/rows{{rank}}.pt")
    distributed.teardown()
""")


def test_two_processes_stream_every_example_once_resume_exactly_and_share_eval(tmp_path):
    """Two gloo processes started as torchrun starts them: an epoch read by 2 ranks x 2
    workers covers the data once; a streamed run stopped and resumed under torchrun ends as
    the uninterrupted one; the sharded, all-reduced eval NLL equals one process's. With
    --rank-split rows, the ranks' epoch covers the data once too, and their losses and
    weights are those of one process with the combined batch (float64, to rounding)."""
    gen = torch.Generator().manual_seed(0)
    n = 70
    points = TensorData(torch.randn(n, 3, generator=gen) + 1, torch.arange(n))
    convert(lambda split: points, tmp_path / "shards", shard_size=9, splits=("train",))
    m = 47
    rows = TensorData(torch.randn(m, 3, generator=gen, dtype=torch.float64) + 1, torch.arange(m))
    convert(lambda split: rows, tmp_path / "rows", shard_size=9, splits=("train",))
    script = tmp_path / "script.py"
    here = Path(__file__).parent
    script.write_text(SCRIPT.format(tests=str(here.parent), here=str(here)))
    # two ranks as torchrun starts them (tests/train/test_distributed.py runs torchrun itself)
    ranks = processes.ranks([script, tmp_path / "shards", tmp_path, tmp_path / "rows"])
    for code, _, err in ranks:
        assert code == 0, err[-3000:]
    ids = [torch.load(tmp_path / f"ids{r}.pt") for r in (0, 1)]
    assert not set(ids[0]) & set(ids[1]) and sorted(ids[0] + ids[1]) == list(range(n))
    runs = [torch.load(tmp_path / f"run{r}.pt", weights_only=True) for r in (0, 1)]
    for k, v in runs[0]["whole"].items():
        assert torch.equal(v, runs[0]["resumed"][k]) and torch.equal(v, runs[1]["resumed"][k]), k
    model = DiagonalGaussian((3,), GaussianConfig())
    model.load_state_dict(runs[0]["whole"])
    nll = evaluate(model, ShardData(tmp_path / "shards"), batch_size=16)["nll"]
    assert runs[0]["nll"] == pytest.approx(nll, rel=1e-12) == runs[1]["nll"]

    two = [torch.load(tmp_path / f"rows{r}.pt", weights_only=True) for r in (0, 1)]
    assert not set(two[0]["ids"]) & set(two[1]["ids"])
    assert sorted(two[0]["ids"] + two[1]["ids"]) == list(range(m))
    torch.set_default_dtype(torch.float64)
    try:  # one process, batches of 10: the reference
        model, losses = recording()
        one = ShardData(tmp_path / "rows")
        Trainer(model, one, None, replace(ROWS, batch_size=10), progress=False).fit()
    finally:
        torch.set_default_dtype(torch.float32)
    assert [k for _, k in losses] == [10] * 4 + [7] + [10] * 4  # crosses an epoch's end
    for step, (loss, k) in enumerate(losses):
        (l0, k0), (l1, k1) = two[0]["losses"][step], two[1]["losses"][step]
        assert (k0, k1) == ((k + 1) // 2, k // 2), step  # rows 0::2 and 1::2
        assert (k0 * l0 + k1 * l1) / k == pytest.approx(loss, rel=1e-12, abs=1e-12), step
    for key, value in model.state_dict().items():
        for r in (0, 1):
            torch.testing.assert_close(two[r]["state"][key], value, rtol=1e-12, atol=1e-12)


def test_an_epoch_of_whole_batches_is_read_to_its_last_batch():
    """Data of exactly two batches: the first two batches are epoch 0 and cover every
    example; the third starts epoch 1 (a test of `>=` for `>` at the epoch's end)."""
    from dgm.data import TensorData
    from dgm.train.stream import BatchStream

    data = TensorData(torch.arange(8.0)[:, None], torch.zeros(8, dtype=torch.long))
    stream = BatchStream(data, 4, seed=0)
    first, second = stream.next(), stream.next()
    assert stream.epoch == 0
    assert sorted(torch.cat([first.x, second.x])[:, 0].tolist()) == list(range(8))
    stream.next()
    assert stream.epoch == 1
