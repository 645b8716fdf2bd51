"""Issue 19, "Run directories that lose work": one writer per run (readers free), weights
never deleted by accident, a checkpoint committed as one unit (killed at every write
point, the run still resumes exactly), the final checkpoint before the last picture, and
failed starts that leave no directory."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from safetensors.torch import load_file

import dgm
import processes
from dgm import run_dir as rd
from dgm.cli import main
from dgm.data import DataConfig
from dgm.train import TrainConfig, resume, train
from dgm.train import checkpoint as ckpt
from dgm.train.lock import LOCK, RunInUse, RunLock
from helpers import one_line_error, quiet_config, snapshot

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SMALL = ["--batch-size", "32", "--device", "cpu", "--latent-dim", "2", "--hidden-sizes", "16"]
SMALL += ["--eval-every", "0", "--sample-every", "0", "--log-every", "5"]
DIGITS = ["train", "vae", "--data", "digits", "--binarize", "static"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 10-step digits VAE with validation (best weights) and an EMA."""
    path = tmp_path_factory.mktemp("runs") / "vae"
    args = [*DIGITS, *SMALL, "--steps", "10", "--checkpoint-every", "5"]
    assert main([*args, "--eval-every", "5", "--ema-decay", "0.9", "--out", str(path)]) == 0
    return path


# -- 1. one writer per run directory --------------------------------------------------------

HOLDER = textwrap.dedent("""
    # `dgm train` that, once its first checkpoint is written (committed, linked at the top
    # level), says so in a file beside the go-file and waits for the go-file
    import pathlib, sys, time
    from dgm.cli import main
    from dgm.train.trainer import Trainer

    go = pathlib.Path(sys.argv[1])
    save = Trainer.save_checkpoint

    def save_then_wait(self):
        save(self)
        if self.step == 5:
            go.with_suffix(".waiting").touch()
            while not go.exists():
                time.sleep(0.05)

    Trainer.save_checkpoint = save_then_wait
    sys.exit(main(sys.argv[2:]))
""")


def test_a_second_writer_is_refused_naming_the_first_and_readers_keep_working(tmp_path, capsys):
    out, go = tmp_path / "run", tmp_path / "go"
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    args = [*DIGITS, *SMALL, "--steps", "10", "--checkpoint-every", "5", "--out", str(out)]
    holder = processes.python([script, go, *args, "--seed", "1"], env=ENV)
    try:
        deadline = time.time() + 120
        waiting = go.with_suffix(".waiting")  # not the commit alone: its links come after it
        while not waiting.exists() and holder.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert waiting.exists(), holder.communicate()[1]
        before = snapshot(out)
        # the writers and the reader run in this process: the holder is another process,
        # which is what the lock is about (a fresh `python -m dgm` each would only add
        # seconds of `import torch`)
        capsys.readouterr()
        for argv in ([*args, "--seed", "2"], ["resume", str(out)]):  # the writers
            code = main(argv)
            err = capsys.readouterr().err
            line = one_line_error(err, argv[0])
            assert code == 2, err
            assert f"{out} is in use by process {holder.pid} on " in line, line
            assert "holder.py" in line and "train vae --data digits" in line, line
            assert " UTC): wait for it to end" in line, line
            assert snapshot(out) == before  # it wrote nothing
        with pytest.raises(RunInUse, match=f"process {holder.pid}"):
            RunLock(out).acquire()
        code = main(["eval", str(out), "--json"])  # a reader: evaluates the committed checkpoint
        done = capsys.readouterr()
        assert code == 0, done.err
        assert "nll" in json.loads(done.out)
    finally:
        go.touch()
        _, err = holder.communicate(timeout=300)
    assert holder.returncode == 0, err
    records = rd.read_metrics(out / rd.METRICS)
    assert [r["step"] for r in records] == [5, 10]  # each step once: one writer
    assert rd.read_json(out / rd.CONFIG)["train"]["seed"] == 1  # the holder's config
    assert not (out / LOCK).exists()  # released and removed at the end


def test_two_trains_started_together_run_once(tmp_path):
    out = tmp_path / "run"
    argv = ["-m", "dgm", *DIGITS, *SMALL, "--steps", "300", "--out", out]
    procs = [processes.python(argv, env=ENV) for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    line = one_line_error(refused, "train")
    assert "is in use by process" in line or "already holds a run" in line, line
    steps = [r["step"] for r in rd.read_metrics(out / rd.METRICS)]
    assert steps == list(range(5, 301, 5))  # every step once
    assert rd.checkpoint_step(out) == 300


# the holder runs dgm/train/lock.py (standard library only) as a module of its own: the
# same RunLock in another process, without the seconds that `import dgm` (torch) costs
HOLD_LOCK = textwrap.dedent("""
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("lock", sys.argv[1])
    lock = sys.modules["lock"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock)
    held = lock.RunLock(sys.argv[2]).acquire()
    print("held", "torch" in sys.modules, flush=True)
    time.sleep(60)
""")


def test_a_lock_dies_with_its_process(tmp_path):
    lock_module = sys.modules[RunLock.__module__].__file__
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, lock_module, str(tmp_path)],
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held False"  # torch never imported
    with pytest.raises(RunInUse, match=f"process {holder.pid}"):
        RunLock(tmp_path).acquire()
    holder.kill()  # kill -9: no cleanup runs, the lock file stays
    holder.wait()
    assert (tmp_path / LOCK).exists()
    with RunLock(tmp_path) as lock:  # but the OS released the lock
        assert lock.held  # and the file names the new holder alone, not the dead one too
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()


# -- 2. weights are never deleted by accident ---------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_a_lock_file_replaced_while_locking_is_locked_anew(tmp_path, monkeypatch):
    """Between open and flock another process removes run.lock, makes a new one and locks
    it: the lock just taken is on a file no one else will open, so acquire must retry on
    the new file (and find it held), not keep the old one."""
    import fcntl

    from dgm.train import lock as run_lock

    real, other = fcntl.flock, []

    def racing(f, op):
        if not other:
            (tmp_path / LOCK).unlink()
            g = open(tmp_path / LOCK, "a+")  # held until the test ends
            real(g, fcntl.LOCK_EX | fcntl.LOCK_NB)
            other.append(g)
        return real(f, op)

    monkeypatch.setattr(run_lock.fcntl, "flock", racing)
    try:
        with pytest.raises(RunInUse):
            RunLock(tmp_path).acquire()
    finally:
        other[0].close()


def test_a_run_without_trainer_state_says_what_it_can_still_do(finished, tmp_path, capsys):
    run = tmp_path / "vae"
    subprocess.run(["cp", "-a", str(finished), str(run)], check=True)
    for path in (run / ckpt.TRAINER_STATE, rd.weights_file(run, ckpt.TRAINER_STATE)):
        path.unlink(missing_ok=True)  # the user deletes trainer.pt
    before = snapshot(run)

    assert main(["resume", str(run)]) == 2
    line = one_line_error(capsys.readouterr().err, "resume")
    assert "has weights (step 10) but no trainer state" in line
    assert f"dgm eval {run}" in line and f"dgm sample {run}" in line
    assert f"--init-from {run} --out NEW_DIR" in line
    assert "--overwrite" not in line and "replace" not in line  # nothing that deletes them

    assert main([*DIGITS, *SMALL, "--steps", "10", "--out", str(run)]) == 2
    line = one_line_error(capsys.readouterr().err, "train")
    assert "--overwrite" in line and f"--init-from {run}" in line
    assert snapshot(run) == before  # refused twice: not a byte changed

    assert main(["eval", str(run)]) == 0  # the weights still serve
    capsys.readouterr()

    # continue from the weights as a new run, on the command line: same model options, the
    # weights as the start
    new = tmp_path / "new"
    argv = ["train", "vae", "--data", "digits", "--binarize", "static", "--steps", "1"]
    argv += ["--lr", "1e-12", "--warmup-steps", "1", "--device", "cpu", "--sample-every", "0"]
    argv += ["--beta", "2.5"]  # an option given anew overrides the run's; the rest carry over
    argv += ["--ema-decay", "0.9"]
    assert main([*argv, "--init-from", str(run), "--out", str(new)]) == 0
    capsys.readouterr()
    start, now = load_file(str(run / rd.WEIGHTS)), load_file(str(new / rd.WEIGHTS))
    average = load_file(str(rd.weights_file(new, rd.EMA_WEIGHTS)))
    for k in start:  # one step at lr 1e-12 from the old weights; the EMA starts there too
        assert torch.allclose(start[k], now[k], atol=1e-6), k
        assert torch.allclose(start[k], average[k], atol=1e-6), k
    assert rd.read_json(new / rd.CONFIG)["init_from"] == {"run": str(run), "step": 10}
    assert rd.read_json(new / rd.CONFIG)["model_config"]["latent_dim"] == 2  # taken over
    assert rd.read_json(new / rd.CONFIG)["model_config"]["beta"] == 2.5  # given anew
    with pytest.raises(ValueError, match="--init-from and --out both name"):
        train("vae", DataConfig("digits"), run, overwrite=True, init_from=run, progress=False)
    assert snapshot(run) == before

    # --overwrite is the explicit choice
    assert main([*DIGITS, *SMALL, "--steps", "5", "--out", str(run), "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "--overwrite: removed its " in err and "model.safetensors" in err
    assert rd.checkpoint_step(run) == 5 and not (run / rd.BEST_WEIGHTS).exists()


def test_train_on_a_resumable_run_names_resume_and_overwrite(finished, capsys):
    before = snapshot(finished)
    assert main([*DIGITS, *SMALL, "--steps", "10", "--out", str(finished)]) == 2
    line = one_line_error(capsys.readouterr().err, "train")
    assert "already holds a run (its checkpoint is at step 10)" in line
    assert f"dgm resume {finished} --steps N" in line and "--overwrite" in line
    assert snapshot(finished) == before


# -- 3. a checkpoint is one unit --------------------------------------------------------------

CUT = dict(steps=6, eval_every=2, log_every=2, checkpoint_every=2, ema_decay=0.9)  # 3
# checkpoints, with validation (best weights) and an EMA; the rest as quiet_config
CUT_MODEL = dict(latent_dim=2, hidden_sizes=(16,))
CUT_DATA = DataConfig("digits", binarize="dynamic")  # dynamic: the binarization RNG resumes
# killed at every write point: two checkpoints are enough (the first commits into an empty
# run, the second also removes the previous folder), 19 write points instead of 29
KILL_CUT = {**CUT, "steps": 4}

KILLER = textwrap.dedent("""
    # one whole run recording its write points, then for each k a forked copy killed
    # (os._exit: no cleanup, like kill -9) right after write point k
    import json, os, sys
    from dgm.data import DataConfig
    from dgm.train import TrainConfig, train
    from dgm.train import checkpoint as ckpt

    base = sys.argv[1]

    def run(out, k):
        points = []

        def hook(label):
            points.append(label)
            if len(points) == k:
                os._exit(17)

        ckpt.on_write = hook
        train("vae", DataConfig("digits", binarize="dynamic"), out, TrainConfig(**{cut}),
              progress=False, **{model})
        return points

    points = run(f"{{base}}/whole", 0)
    with open(f"{{base}}/points.json", "w") as f:
        json.dump(points, f)
    for k in range(1, len(points) + 1):
        pid = os.fork()
        if pid == 0:
            run(f"{{base}}/cut{{k}}", k)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 17, (k, status)
""")


def _state(run):
    """The committed model, EMA and best weights of a run, and its step."""
    found = rd.committed(run)
    names = (rd.WEIGHTS, rd.EMA_WEIGHTS, rd.BEST_WEIGHTS)
    return found.step, {n: load_file(str(found.path(n))) for n in names}


def _same(a, b):
    assert a[0] == b[0]
    for name in a[1]:
        assert a[1][name].keys() == b[1][name].keys()
        for k in a[1][name]:
            assert torch.equal(a[1][name][k], b[1][name][k]), (name, k)


def test_a_kill_at_every_write_point_leaves_a_run_that_continues_exactly(tmp_path):
    script = tmp_path / "killer.py"
    cut = dataclasses.asdict(quiet_config(**KILL_CUT))
    script.write_text(KILLER.format(cut=cut, model=CUT_MODEL))
    code, _, err = processes.run([script, tmp_path], env=ENV, timeout=600)
    assert code == 0, err
    points = json.loads((tmp_path / "points.json").read_text())
    # per checkpoint: 4 files, the commit record, 4 top-level links, the previous folder
    assert points.count(rd.CHECKPOINT) == 2 and len(points) == 2 * 9 + 1, points
    reference = _state(tmp_path / "whole")
    assert reference[0] == 4

    for k in range(1, len(points) + 1):
        run = tmp_path / f"cut{k}"
        commits = points[:k].count(rd.CHECKPOINT)
        found = rd.committed(run)
        assert (found.step if found else 0) == 2 * commits, k  # the last commit, or none
        if found is not None:  # resume works, and train refuses
            with pytest.raises(FileExistsError, match="dgm resume"):
                train("vae", CUT_DATA, run, progress=False)
            assert dgm.load(run) is not None  # readers too
            resume(run, progress=False)
        else:  # it never committed: resume says so, and train replaces it
            with pytest.raises(FileNotFoundError, match="never reached its first checkpoint"):
                resume(run, progress=False)
            train("vae", CUT_DATA, run, quiet_config(**KILL_CUT), progress=False, **CUT_MODEL)
        _same(_state(run), reference)
        folders = sorted(p.name for p in (run / rd.CHECKPOINTS).iterdir())
        last_commit = len(points) - 1 - points[::-1].index(rd.CHECKPOINT)
        if last_commit <= k - 1 < len(points) - 1:  # killed after the last commit, before
            folders.remove("step-0000002")  # it removed the previous checkpoint: harmless
        assert folders == ["step-0000004"], k
        steps = [r["step"] for r in rd.read_metrics(run / rd.METRICS) if "loss" in r]
        assert steps[-1] == 4, k


def test_a_run_written_before_checkpoint_json_still_loads_and_resumes_exactly(
    tmp_path, monkeypatch
):
    """The old layout (files at the top level, no checkpoint.json), made from a new run
    stopped at step 3 by removing what the old code did not write."""
    from dgm.train import Trainer

    cfg = quiet_config(**CUT)
    train("vae", CUT_DATA, tmp_path / "whole", cfg, progress=False, **CUT_MODEL)
    original = Trainer._train_step

    def stop_at_3(self):
        original(self)
        if self.step + 1 == 3:
            self.request_stop()

    monkeypatch.setattr(Trainer, "_train_step", stop_at_3)
    old = tmp_path / "old"
    train("vae", CUT_DATA, old, cfg, progress=False, **CUT_MODEL)
    monkeypatch.setattr(Trainer, "_train_step", original)
    saved = rd.read_json(old / rd.CONFIG)
    saved["train"] = {k: v for k, v in saved["train"].items() if not k.startswith("sample_")}
    saved["train"]["sample_every"] = 0
    rd.write_json(old / rd.CONFIG, saved)  # as the old code wrote it
    (old / rd.CHECKPOINT).unlink()
    subprocess.run(["rm", "-r", str(old / rd.CHECKPOINTS)], check=True)
    assert sorted(p.name for p in old.iterdir()) == sorted(
        [
            rd.CONFIG,
            rd.METRICS,
            "curves.png",
            rd.WEIGHTS,
            rd.EMA_WEIGHTS,
            rd.BEST_WEIGHTS,
            ckpt.TRAINER_STATE,
        ]
    )
    assert rd.checkpoint_step(old) == 3 and dgm.load(old) is not None
    with pytest.raises(FileExistsError, match="dgm resume"):
        train("vae", CUT_DATA, old, cfg, progress=False)
    resume(old, progress=False)
    assert rd.committed(old).step == 6  # from now on in the new layout
    _same(_state(old), _state(tmp_path / "whole"))


def test_an_old_run_torn_between_its_files_points_to_init_from(tmp_path):
    data = DataConfig("digits", binarize="static")
    cfg = TrainConfig(steps=4, batch_size=32, checkpoint_every=2, device="cpu", sample_every=0)
    train("vae", data, tmp_path, cfg, progress=False, latent_dim=2, hidden_sizes=(16,))
    torn = load_file(str(tmp_path / rd.WEIGHTS))
    model = dgm.load(tmp_path)
    (tmp_path / rd.CHECKPOINT).unlink()  # old layout, whose weights are a step ahead
    (tmp_path / rd.WEIGHTS).unlink()
    rd.save_weights(tmp_path / rd.WEIGHTS, model, 5, torn)
    saved = rd.read_json(tmp_path / rd.CONFIG)
    saved["train"]["steps"] = 8
    rd.write_json(tmp_path / rd.CONFIG, saved)
    with pytest.raises(ValueError, match=r"come from different steps.*--init-from"):
        resume(tmp_path, progress=False)


# -- 4. the last picture comes after the final checkpoint, and stops on a signal -------------

DDPM = ["train", "ddpm", "--data", "digits", "--steps", "4", "--batch-size", "16"]
DDPM += ["--num-timesteps", "10", "--unet-channels", "8", "--channel-mult", "1"]
DDPM += ["--device", "cpu", "--eval-every", "0", "--log-every", "2", "--checkpoint-every", "4"]


def test_a_signal_during_the_last_picture_stops_at_once_with_the_checkpoint_safe(
    tmp_path, monkeypatch, capsys
):
    from dgm.models.diffusion.ddpm import DDPM as Model

    out, seen = tmp_path / "run", []
    draw = Model.sample

    def slow_sample(self, n, c=None, **kw):
        seen.append((rd.checkpoint_step(out), n, kw.get("sampler"), kw.get("steps")))
        if len(seen) == 2:  # the second chunk: the picture is "slow", a SIGTERM arrives
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # never reached: the signal ends the picture
        return draw(self, n, c, **kw)

    monkeypatch.setattr(Model, "sample", slow_sample)
    monkeypatch.setattr("dgm.train.pictures.SLOW_PICTURE_S", 0.0)  # drawn in chunks
    argv = [*DDPM, "--sample-every", "4", "--sample-sampler", "ddim", "--sample-steps", "3"]
    t0 = time.time()
    assert main([*argv, "--sample-count", "20", "--out", str(out)]) == 130
    assert time.time() - t0 < 25
    err = capsys.readouterr().err
    assert "samples at step 4:  40%" in err  # the slow picture shows its progress: 8 of 20
    assert "interrupted at step 4" in err
    # the final checkpoint was committed before the picture began, with the run's options
    assert seen == [(4, 8, "ddim", 3), (4, 8, "ddim", 3)]
    assert rd.committed(out).step == 4 and not (out / "samples").exists()
    _, last = resume(out, progress=False)
    assert last == {"step": 4, "finished": True}


def test_pictures_follow_the_sampling_options_and_sample_every_0_draws_none(
    tmp_path, monkeypatch, capsys
):
    from dgm.models.diffusion.ddpm import DDPM as Model

    calls = []
    draw = Model.sample

    def counted(self, n, c=None, **kw):
        calls.append((n, kw))
        return draw(self, n, c, **kw)

    monkeypatch.setattr(Model, "sample", counted)
    assert main([*DDPM, "--sample-every", "0", "--out", str(tmp_path / "a")]) == 0
    assert calls == [] and not (tmp_path / "a" / "samples").exists()
    argv = [*DDPM, "--sample-every", "2", "--sample-count", "5", "--sample-sampler", "ddim"]
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert [n for n, _ in calls] == [5, 5]
    options = [{k: v for k, v in kw.items() if k != "generator"} for _, kw in calls]
    assert options == [{"sampler": "ddim"}] * 2
    assert sorted(p.name for p in (tmp_path / "b" / "samples").iterdir()) == [
        "step_0000002.png",
        "step_0000004.png",
    ]
    saved = rd.read_json(tmp_path / "b" / rd.CONFIG)["train"]
    assert saved["sample_count"] == 5 and saved["sample_options"] == {"sampler": "ddim"}
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([*DDPM, "--sample-sampler", "euler", "--out", str(tmp_path / "c")])
    assert stop.value.code == 2 and "--sample-sampler" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


# -- 5. a start that fails leaves no directory ---------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "vae", "--data", "no_such_data"],  # refused while parsing
        ["train", "gpt", "--data", "digits"],  # the model cannot take the data
        [*DIGITS, "--num-classes", "20"],  # built, then refused: 10 classes in the data
    ],
    ids=["bad-data-name", "model-data-mismatch", "class-mismatch"],
)
def test_a_failed_start_leaves_no_directory(argv, tmp_path, capsys):
    out = tmp_path / "a" / "b" / "run"
    assert main([*argv, "--steps", "5", "--device", "cpu", "--out", str(out)]) == 2
    capsys.readouterr()
    assert list(tmp_path.iterdir()) == []


def test_a_start_refused_at_build_time_leaves_no_directory(tmp_path, monkeypatch, capsys):
    """A check that refuses once the model is built (e.g. a memory estimate)."""
    import dgm.train.run as run_module

    def refuse(*args, **kwargs):
        raise ValueError("the model needs about 160 GB, more than this machine has: --force")

    monkeypatch.setattr(run_module, "create", refuse)
    out = tmp_path / "run"
    assert main([*DIGITS, *SMALL, "--steps", "5", "--out", str(out)]) == 2
    assert "160 GB" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # an existing folder keeps what it held
    assert main([*DIGITS, *SMALL, "--steps", "5", "--out", str(out)]) == 2
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_resume_refuses_a_committed_file_changed_or_missing_since_its_commit(tmp_path):
    """checkpoint.json holds each file's SHA-256: a file edited after the commit (one byte
    of the weights, still a readable safetensors file) or removed is refused by name before
    any weight is loaded; put back, the run resumes."""
    data = DataConfig("digits", binarize="static")
    cfg = TrainConfig(steps=4, batch_size=32, checkpoint_every=2, device="cpu", sample_every=0)
    train("vae", data, tmp_path, cfg, progress=False, latent_dim=2, hidden_sizes=(16,))
    saved = rd.read_json(tmp_path / rd.CONFIG)
    saved["train"]["steps"] = 6
    rd.write_json(tmp_path / rd.CONFIG, saved)
    found = rd.committed(tmp_path)
    weights = found.folder / rd.WEIGHTS
    blob = weights.read_bytes()
    tensors = load_file(str(weights))
    name = sorted(tensors)[0]
    changed = {**tensors, name: tensors[name] + 1}  # the same keys, shapes and metadata
    rd.save_weights(weights, dgm.load(tmp_path), found.step, changed)
    with pytest.raises(ValueError, match=r"model\.safetensors has changed since step 4"):
        resume(tmp_path, progress=False)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors not found: .*incomplete"):
        resume(tmp_path, progress=False)
    weights.write_bytes(blob)
    resume(tmp_path, progress=False)
    assert rd.committed(tmp_path).step == 6


def test_metrics_skip_a_torn_last_line_and_refuse_a_broken_middle_one(tmp_path):
    """A crash mid-append leaves a last line without its end: the records before it are
    read. A broken line with records after it is damage, named by its line number."""
    path = tmp_path / "metrics.jsonl"
    good = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]
    body = "".join(json.dumps(r) + "\n" for r in good)
    path.write_text(body + '{"step": 3, "lo')
    assert rd.read_metrics(path) == good
    path.write_text(body + "\n" + '{"step": 3, "lo')  # a blank line before the torn one
    assert rd.read_metrics(path) == good
    path.write_text(json.dumps(good[0]) + '\n{"step": 2, "lo\n' + json.dumps(good[1]) + "\n")
    with pytest.raises(ValueError, match=r"metrics\.jsonl: line 2 is not valid JSON"):
        rd.read_metrics(path)
