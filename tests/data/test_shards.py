"""Shard directories (``dgm convert``, ``--data shards``): the converter round-trips every
kind of dataset exactly, a damaged directory is a one-line error naming the shard, and
the stream reads every example once per epoch across ranks and workers, in an order fixed
by (seed, epoch), resuming where it stopped. Every test writes its own tiny data."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from dgm.data import DataConfig, TensorData, get
from dgm.data.shard_stream import ShardStream
from dgm.data.shards import RESIDENT_SHARDS, ShardData, ShardError, convert
from dgm.data.text import TextData
from dgm.train.stream import ShardBatchStream

N = 103  # examples: not a multiple of the shard size or the batch size


def _counting(n: int = N) -> TensorData:
    """x_i = i, so a batch names the examples it holds."""
    return TensorData(torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n) % 3)


@pytest.fixture
def counted(tmp_path):
    convert(lambda split: _counting(), tmp_path, shard_size=10, splits=("train",))
    return ShardData(tmp_path, "train")


def _ids(batches) -> list[int]:
    return torch.cat([b.x[:, 0] for b in batches]).long().tolist()


# -- the converter ---------------------------------------------------------------------------


def _kinds(tmp_path):
    """(name, DataConfig) of each kind of dataset: arrays, a CSV table, text, pictures, toy."""
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "a.npz", x=rng.normal(size=(30, 2, 3)).astype(np.float32), y=np.arange(30) % 3
    )
    (tmp_path / "t.csv").write_text(
        "a,b,kind\n" + "".join(f"{i},{i % 5 or ''},k{i % 2}\n" for i in range(40))
    )
    (tmp_path / "book.txt").write_text("the quick brown fox jumps over the lazy dog. " * 12)
    for label in ("cat", "dog"):
        (tmp_path / "pics" / label).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, size=(5, 5), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pics" / label / f"{i}.png")
    return [
        DataConfig("tensors", root=str(tmp_path / "a.npz")),
        DataConfig("csv", root=str(tmp_path / "t.csv"), label_column="kind"),
        DataConfig("text", root=str(tmp_path / "book.txt"), block_size=16),
        DataConfig("images", root=str(tmp_path / "pics"), image_size=4, scale="byte"),
        DataConfig("moons", num_samples=50, condition=None),
    ]


def test_convert_round_trips_every_kind_exactly(tmp_path):
    for k, data in enumerate(_kinds(tmp_path)):
        out = tmp_path / f"shards{k}"
        convert(data, out, shard_size=7)
        for split in ("train", "valid", "test"):
            try:
                original = data.load(split)
            except ValueError:
                continue
            back = get("shards", split, str(out))
            got = back.read(torch.arange(len(back)))
            assert got.x.dtype == original.x.dtype, data.name
            torch.testing.assert_close(got.x, original.x, rtol=0, atol=0, equal_nan=True)
            assert torch.equal(got.y, original.y)
            assert (original.context is None) == (got.context is None)
            assert back.num_classes == original.num_classes
            assert back.value_range == original.value_range
            assert getattr(back, "vocab", None) == getattr(original, "vocab", None)


def test_context_and_text_attributes_round_trip(tmp_path):
    ctx = TensorData(torch.rand(12, 1, 4, 4), torch.arange(12) % 2, context=torch.rand(12, 1, 2, 2))
    convert(lambda s: ctx, tmp_path / "c", shard_size=5, splits=("train",))
    back = ShardData(tmp_path / "c")
    assert back.context_shape == (1, 2, 2)
    assert torch.equal(back.read(torch.arange(12)).context, ctx.context)
    text = TextData(torch.randint(0, 4, (9, 6)), vocab="\nabc", name="words", end_token=0)
    convert(lambda s: text, tmp_path / "t", shard_size=4, splits=("train",))
    back = ShardData(tmp_path / "t")
    assert (back.vocab, back.end_token) == ("\nabc", 0)
    assert back.batch(torch.tensor([8, 0])).x.dtype == torch.long
    assert back.info == text.info  # the typed description survives the conversion
    digits = get("digits", "train", binarize="static")
    convert(lambda s: digits, tmp_path / "d", shard_size=500, splits=("train",))
    assert ShardData(tmp_path / "d").info == digits.info  # classes and their names too


# -- damaged directories -----------------------------------------------------------------------


def _rewrite(root, name, array):
    """Replace shard file ``name`` by ``array`` and make the index agree with its bytes."""
    np.save(root / name, array)
    index = json.loads((root / "index.json").read_text())
    for shard in index["splits"]["train"]:
        for entry in shard["files"].values():
            if entry["file"] == name:
                from dgm.io import file_digest

                entry["bytes"] = (root / name).stat().st_size
                entry["sha256"] = file_digest(root / name)
    (root / "index.json").write_text(json.dumps(index))


def _truncate(root):
    path = root / "train-00002.x.npy"
    path.write_bytes(path.read_bytes()[:-8])


def _corrupt(root):
    path = root / "train-00002.x.npy"
    path.write_bytes(b"\x00" * path.stat().st_size)


def _flip(root):
    path = root / "train-00002.x.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / "index.json").unlink(), "index.json not found"),
        (lambda r: (r / "train-00002.x.npy").unlink(), "shard .*train-00002.x.npy is missing"),
        (_truncate, "shard .*train-00002.x.npy is truncated"),
        (_corrupt, "shard .*train-00002.x.npy is corrupt"),
        (_flip, "shard .*train-00002.x.npy does not match its SHA-256"),
        (
            lambda r: _rewrite(r, "train-00002.x.npy", np.zeros((10, 2), np.float32)),
            "shard .*train-00002.x.npy holds float32 of shape \\(10, 2\\)",
        ),
    ],
)
def test_damaged_shards_are_one_line_errors_naming_the_shard(tmp_path, damage, message):
    convert(lambda split: _counting(), tmp_path, shard_size=10, splits=("train",))
    damage(tmp_path)
    with pytest.raises(ShardError, match=message) as err:
        ShardData(tmp_path, "train")
    assert "\n" not in str(err.value)


def test_a_damaged_shard_writes_nothing_to_the_run_directory(tmp_path, capsys):
    from dgm.cli import main

    convert(lambda split: _counting(), tmp_path / "s", shard_size=10, splits=("train",))
    _flip(tmp_path / "s")
    argv = ["train", "vae", "--data", "shards", "--data-root", str(tmp_path / "s")]
    code = main([*argv, "--steps", "2", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "train-00002.x.npy" in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_a_read_keeps_the_order_asked_and_maps_each_shard_once(counted, monkeypatch):
    """A batch drawn from two shards, interleaved, comes back in the order asked, read
    with one gather per shard (not example by example: that was the reader's cost)."""
    opened = []
    arrays = counted._arrays
    monkeypatch.setattr(counted, "_arrays", lambda k: opened.append(k) or arrays(k))
    ids = [3, 25, 4, 27, 9, 20]  # shards 0 and 2
    batch = counted.read(torch.tensor(ids))
    assert batch.x[:, 0].long().tolist() == ids and batch.y.tolist() == [i % 3 for i in ids]
    assert sorted(opened) == [0, 2]
    assert counted.read(torch.tensor([12, 11])).x[:, 0].tolist() == [12, 11]  # one shard
    assert len(counted.read(torch.zeros(0, dtype=torch.long)).x) == 0


def _file_backed_kb() -> int:
    """This process's resident pages of mapped files (kB, proportional: Pss_File)."""
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss_File:"):
            return int(line.split()[1])
    raise AssertionError("no Pss_File line")


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
def test_a_reader_keeps_the_pages_of_only_the_shards_it_read_last(tmp_path):
    """Reading every page of 20 shards of 1 MiB leaves about RESIDENT_SHARDS of them
    resident (the rest given back), with every map still open."""
    x = torch.rand(20 * 256, 1024)  # 20 shards x 256 examples x 4 KiB
    convert(lambda split: TensorData(x), tmp_path, shard_size=256, splits=("train",))
    data = ShardData(tmp_path, "train", verify=False)
    data.close()
    data.read(torch.arange(4))  # the code of a read, mapped in before measuring
    before = _file_backed_kb()
    for k in range(20):
        assert torch.equal(
            data.read(torch.arange(k * 256, (k + 1) * 256)).x, x[k * 256 : (k + 1) * 256]
        )
    grown_mib = (_file_backed_kb() - before) / 1024
    assert grown_mib < RESIDENT_SHARDS + 3, f"{grown_mib:.1f} MiB of 20 read stayed resident"
    assert len(data._maps) == 20


# -- the stream --------------------------------------------------------------------------------


def test_every_example_once_per_epoch_across_two_ranks_and_two_workers(counted):
    for epoch in (0, 1):
        seen, shards = [], []
        for rank in (0, 1):
            stream = ShardStream(counted, 4, seed=5, rank=rank, world_size=2, workers=2)
            stream.set_position(epoch, 0)
            seen += _ids(stream)
            shards += [s for w in range(2) for s in stream.shards(w)]
        assert sorted(seen) == list(range(N))  # none twice, none dropped
        assert sorted(shards) == list(range(11))  # each (rank, worker) its own shards


def test_rows_split_gives_the_one_process_batches_across_ranks(counted):
    """rank_split="rows": at every position of an epoch the two ranks' batches are rows
    0::2 and 1::2 of the one-process batch of 2 x 4, so each example comes once."""
    for epoch in (0, 1):
        one = ShardStream(counted, 8, seed=5, workers=2, buffer=8)
        one.set_position(epoch, 0)
        ranks = [
            ShardStream(counted, 4, seed=5, rank=r, world_size=2, workers=2, buffer=8, split="rows")
            for r in (0, 1)
        ]
        for stream in ranks:
            stream.set_position(epoch, 0)
        whole, parts = list(one), [list(stream) for stream in ranks]
        assert [len(p) for p in parts] == [len(whole)] * 2
        for batch, r0, r1 in zip(whole, *parts, strict=True):
            ids = batch.x[:, 0].long()
            assert r0.x[:, 0].long().tolist() == ids[0::2].tolist()
            assert r1.x[:, 0].long().tolist() == ids[1::2].tolist()
        assert sorted(_ids(parts[0]) + _ids(parts[1])) == list(range(N))


def test_order_is_fixed_by_seed_and_epoch(counted):
    def order(seed, epoch):
        stream = ShardStream(counted, 4, seed=seed, workers=2, buffer=8)
        stream.set_position(epoch, 0)
        return _ids(stream)

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(2, 0)
    assert order(1, 0) != order(1, 1)  # a new shuffle every epoch
    assert order(1, 0) != sorted(order(1, 0))


def test_the_shuffle_buffer_mixes_shards_and_holds_back_what_it_has_not_read(counted):
    """One worker, shards of 10 read in the plan's order. A buffer as large as the data
    mixes every shard into the first ten examples out; a buffer of 8 lets an example out
    only once its shard is read, and holds exactly 8 back: some wait for a later shard, and
    the first example out after a shard joins is, for some shard, one of that shard's (a
    buffer holding fewer would have let that place go to an example read before it)."""
    offsets = counted.offsets.tolist()
    for buffer in (N, 8):
        stream = ShardStream(counted, 4, seed=5, workers=1, buffer=buffer)
        order, out = stream.shards(0), stream.ids(0).tolist()
        assert sorted(out) == list(range(N))
        shard_of = {i: k for k in order for i in range(offsets[k], offsets[k + 1])}
        if buffer == N:
            assert len({shard_of[i] for i in out[:10]}) > 2  # a whole shuffle
            continue
        read, held, attained = 0, [], []
        for j, k in enumerate(order[:-1]):
            read += offsets[k + 1] - offsets[k]
            assert {shard_of[i] for i in out[: read - buffer]} <= set(order[: j + 1])
            held.append(not {shard_of[i] for i in out[:read]} <= set(order[: j + 1]))
            attained.append(shard_of[out[read - buffer]] == order[j + 1])
        assert any(held)  # some of a shard's examples waited for a later one
        assert any(attained)  # the bound above is reached: no fewer than 8 were held


def test_loader_workers_give_the_planned_order_from_any_position(counted):
    stream = ShardStream(counted, 4, seed=3, workers=2)
    planned = list(stream)  # read in this process, in the plan's order
    for position in (0, 5):  # 5: a resume in mid-epoch, worker 1's turn
        stream.set_position(0, position)
        got = _ids(DataLoader(stream, batch_size=None, num_workers=2))
        assert got == _ids(planned[position:])


def test_parcels_from_workers_come_back_in_the_planned_order(counted):
    """Training's stream takes batches from 2 workers ``group`` at a time (one hand-over
    per parcel) and puts them back in the plan's order: the batches of reading in this
    process, over two epochs (the workers' shares differ: 6 and 5 shards) and after a
    resume at worker 1's turn."""

    def batches(stream, n):
        return [stream.next().x[:, 0].long().tolist() for _ in range(n)]

    plan = ShardStream(counted, 4, seed=3, workers=2)
    expected = []
    for epoch in (0, 1):
        plan.set_position(epoch, 0)
        expected += [b.x[:, 0].long().tolist() for b in plan]
    stream = ShardBatchStream(counted, 4, seed=3, workers=2)
    assert stream.group > 1
    assert batches(stream, len(expected)) == expected
    first = ShardBatchStream(counted, 4, seed=3, workers=2)
    head = batches(first, 5)
    second = ShardBatchStream(counted, 4, seed=3, workers=2)
    second.load_state_dict(first.state_dict())
    assert head + batches(second, len(expected) - 5) == expected
    # resumed where another worker count is the default (another machine's cores): the
    # saved count decides the order, which depends on it
    for workers in (1, 0):
        third = ShardBatchStream(counted, 4, seed=3, workers=workers)
        third.load_state_dict(first.state_dict())
        assert head + batches(third, len(expected) - 5) == expected, workers


def test_data_sent_to_spawned_workers_still_reads_right_here_and_there(counted):
    """A DataLoader whose workers start by spawn or forkserver (macOS's default; Linux's
    from Python 3.14) pickles the stream with torch's reductions, which move each tensor's
    storage to shared memory and free the old one: an array viewing that memory then read
    freed memory (garbage example ids in the workers, found when a test's process came
    from a forkserver). Both sides must read the right examples after the hand-over."""
    from multiprocessing.reduction import ForkingPickler

    import torch.multiprocessing

    ids = torch.tensor([0, 9, 10, 25, 4, len(counted) - 1])
    want = counted.read(ids).x.clone()
    copy = ForkingPickler.loads(ForkingPickler.dumps(ShardStream(counted, 4, seed=0))).data
    # churn the allocator: freed blocks of the offsets' size come back holding -1
    junk = [torch.full_like(counted.offsets, -1) for _ in range(64)]
    assert junk and torch.equal(counted.read(ids).x, want)
    assert torch.equal(copy.read(ids).x, want)


@pytest.mark.parametrize("split", ["shards", "rows"])
def test_a_resumed_stream_continues_with_the_same_examples(counted, split):
    def stream():
        return ShardBatchStream(
            counted, 8, seed=0, rank=1, world_size=2, workers=0, rank_split=split
        )

    whole = stream()
    expected = _ids(whole.next() for _ in range(12))  # crosses into the second epoch
    first = stream()
    head = _ids(first.next() for _ in range(5))
    second = stream()
    second.load_state_dict(first.state_dict())
    assert head + _ids(second.next() for _ in range(7)) == expected


WORKER_GROWTH = """
import os, sys
from pathlib import Path
import torch
from dgm.data import TensorData
from dgm.data.shards import ShardData, convert
from dgm.train.stream import ShardBatchStream

def private_mib(pid):
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1]) / 1024

root = Path(sys.argv[1])
x = torch.rand(40 * 256, 1024)  # 40 batches of 256 x 4 KiB
convert(lambda split: TensorData(x), root, shard_size=2560, splits=("train",))
stream = ShardBatchStream(ShardData(root, "train", verify=False), 256, seed=0, workers=1)
me = os.getpid()
for _ in range(3):
    stream.next()
(worker,) = [int(p) for p in Path(f"/proc/{me}/task/{me}/children").read_text().split()]
start = private_mib(worker)
for _ in range(32):
    stream.next()
print(private_mib(worker) - start)
"""


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
def test_a_loader_worker_memory_stays_flat_over_an_epoch(tmp_path):
    """A DataLoader worker hands 1 MiB batches over shared memory: its private memory
    must not grow by a batch per batch (glibc's heap, without ``lean_worker``). Measured
    in a fresh process, as a training run forks its readers: forked from a pytest worker
    that has run hundreds of tests, the reader also copies pages of that process's state
    as it touches them (21 MiB over 32 batches seen in CI, with the fix in place)."""
    import processes

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code, out, err = processes.run(["-c", WORKER_GROWTH, tmp_path], env=env)
    assert code == 0, err
    grown = float(out.split()[-1])
    assert grown < 12, f"the worker's private memory grew by {grown:.0f} MiB over 32 batches"


CHECK_GROWTH = """
import sys
from pathlib import Path
import torch
from dgm.data import TensorData
from dgm.data.shards import ShardData, convert
from dgm.train import TrainConfig, Trainer
from helpers import DiagonalGaussian, GaussianConfig, quiet_config

def anon_mib():
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss_Anon:"):
            return int(line.split()[1]) / 1024

root = Path(sys.argv[1])
convert(lambda split: TensorData(torch.rand(6 * 8192, 1024)), root, shard_size=8192,
        splits=("train",))  # 6 chunks of the check, 32 MiB each
start = anon_mib()
Trainer(DiagonalGaussian((1024,), GaussianConfig()), ShardData(root, "train"), None,
        quiet_config(steps=1, batch_size=64, workers=0), progress=False)
print(anon_mib() - start)
"""


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
def test_the_up_front_check_of_shards_gives_its_memory_back(tmp_path):
    """The trainer checks every example before training, 8,192 at a time: on a shard
    directory each chunk's pages go back to the system, so the check of data larger than
    memory does not hold it (glibc kept the freed chunks: 390 MB over the interpreter for
    550,000 Fashion-MNIST images, past the streaming benchmark's cap)."""
    import processes

    code, out, err = processes.run(["-c", CHECK_GROWTH, tmp_path])
    assert code == 0, err
    grown = float(out.split()[-1])
    assert grown < 24, f"the check of 192 MiB of shards left {grown:.0f} MiB in the trainer"


def test_dgm_convert_writes_shards_that_train_reads(tmp_path, capsys):
    from dgm.cli import main

    np.save(tmp_path / "x.npy", np.arange(60, dtype=np.float32).reshape(20, 3))
    argv = ["convert", "--data", "tensors", "--data-root", str(tmp_path / "x.npy")]
    assert main([*argv, "--out", str(tmp_path / "s"), "--shard-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "--data shards --data-root" in out
    for split in ("train", "valid", "test"):  # every split's count, over all its shards
        n = len(get("tensors", split, str(tmp_path / "x.npy")))
        assert f"{split}: {n} examples in {-(-n // 4)} shard(s)" in out
    back = get("shards", "train", str(tmp_path / "s"))
    assert torch.equal(back.x, get("tensors", "train", str(tmp_path / "x.npy")).x)
    assert main([*argv, "--out", str(tmp_path / "t"), "--shard-size", "0"]) == 2
    assert "--shard-size must be at least 1" in capsys.readouterr().err
