"""Issue "First use": what a new user typed, and what dgm must answer. Each test replays
the user's command (in a subprocess where the exit path itself is the point)."""

import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import dgm
from dgm.cli import main
from dgm.cli.parser import build_parser
from dgm.cli.train import _finish
from dgm.train.checkpoint import TRAINER_STATE
from dgm.train.run import clear_unstarted
from helpers import one_line_error, snapshot

SMALL = ["--batch-size", "32", "--device", "cpu", "--latent-dim", "2", "--hidden-sizes", "16"]
SMALL += ["--eval-every", "0", "--sample-every", "0", "--log-every", "5"]
DIGITS = ["train", "vae", "--data", "digits", "--binarize", "static"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def dgm_cli(*args):
    """``python -m dgm ARGS`` as the user ran it: (exit code, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "dgm", *map(str, args)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 20-step digits VAE."""
    path = tmp_path_factory.mktemp("runs") / "vae"
    assert main([*DIGITS, *SMALL, "--steps", "20", "--out", str(path)]) == 0
    return path


# -- 1 and 6: a start that fails leaves nothing stuck --------------------------------------


def test_lr_1e15_stops_with_one_true_line_and_a_replaceable_directory(tmp_path, capsys):
    out = tmp_path / "run"
    # the user's command (`--device cpu` added: the same answer on a GPU machine), in this
    # process: its exit status is main's return value (`raise SystemExit(main())`), and a
    # warning, which the process would print on stderr, is recorded and must not occur
    argv = [*DIGITS, "--steps", "50", "--lr", "1e15", "--out", str(out), "--device", "cpu"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(argv)
    err = capsys.readouterr().err
    assert code == 3, err
    assert [str(w.message) for w in caught] == []
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("dgm train: training stopped: ")
    assert (
        "NaN or infinite" in last or "non-finite" in last
    ) and "no checkpoint was written" in last
    assert "last good checkpoint" not in err and "tensor(" not in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]  # no checkpoint

    # `dgm resume` on it names the way out; the retry replaces it (in this process: its
    # exit path is `return 2`, the same line as the subprocess's)
    code, err = main(["resume", str(out)]), capsys.readouterr().err
    assert code == 2 and "never reached its first checkpoint" in one_line_error(err, "resume")
    assert f"dgm train vae --data digits ... --out {out}" in err
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


def test_lr_1e10_stops_at_the_trainers_guard(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*DIGITS, *SMALL, "--steps", "50", "--lr", "1e10", "--out", str(out)]) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("dgm train: training stopped: ") and "Traceback" not in err
    assert "no checkpoint was written" in err and "starts afresh" in err
    assert not (out / TRAINER_STATE).exists()


def test_train_replaces_a_run_that_never_checkpointed_and_keeps_other_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*DIGITS, *SMALL, "--steps", "20", "--lr", "1e15", "--out", str(out)]) == 3
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')  # as a later failure
    (out / "samples").mkdir()
    (out / "samples" / "step_0000001.png").write_bytes(b"png")
    (out / "notes.txt").write_text("mine")  # not dgm's: stays
    capsys.readouterr()

    assert main([*DIGITS, *SMALL, "--steps", "10", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    told = [line for line in err.splitlines() if "never reached its first checkpoint" in line]
    assert len(told) == 1 and "config.json" in told[0] and "metrics.jsonl" in told[0]
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / TRAINER_STATE).is_file() and not (out / "samples").exists()
    steps = [json.loads(s)["step"] for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10]  # the old run's lines are gone

    before = snapshot(out)  # a run with a checkpoint is never replaced
    assert main([*DIGITS, *SMALL, "--steps", "10", "--out", str(out)]) == 2
    assert "already holds a run (its checkpoint is at step 10)" in capsys.readouterr().err
    assert snapshot(out) == before
    with pytest.raises(FileExistsError):
        clear_unstarted(out)
    assert snapshot(out) == before


def test_a_run_still_before_its_first_checkpoint_is_not_replaced(tmp_path, monkeypatch, capsys):
    from dgm.train.trainer import Trainer

    out, seen = tmp_path / "run", []
    fit = Trainer.fit

    def second_user_arrives(self):  # a second `dgm train --out` while this one trains
        before = snapshot(out)
        with pytest.raises(FileExistsError, match=r"in use by process \d+ on "):
            clear_unstarted(out)
        seen.append(snapshot(out) == before)
        return fit(self)

    monkeypatch.setattr(Trainer, "fit", second_user_arrives)
    assert main([*DIGITS, *SMALL, "--steps", "5", "--out", str(out)]) == 0
    assert seen == [True]


# -- 2 and 3: flags ------------------------------------------------------------------------


def _usage_error(argv, capsys):
    """(exit code, stderr) of ``main(argv)`` ending in argparse's usage error."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    return stop.value.code, capsys.readouterr().err


def test_misspelled_flags_get_the_subcommands_usage_and_the_closest_flag(run, capsys):
    # the user's process once (its exit status); the other two in this process
    code, _, err = dgm_cli("train", "vae", "--data", "digits", "--step", "10", "--out", "x")
    assert code == 2
    assert "usage: dgm train" in err and "did you mean --steps?" in err
    args = ["--data", "digits", "--steps", "10", "--lattent-dim", "3", "--out", "x"]
    code, err = _usage_error(["train", "vae", *args], capsys)
    assert code == 2 and "did you mean --latent-dim?" in err and "usage: dgm [-h]" not in err
    code, err = _usage_error(["eval", str(run), str(run)], capsys)
    assert code == 2 and "usage: dgm eval" in err and "unrecognized arguments" in err


def test_no_parser_takes_abbreviations(run, capsys):
    _, parsers = build_parser("vae")
    assert all(not p.allow_abbrev for p in parsers.values())
    assert not build_parser(None)[0].allow_abbrev
    for argv in (["eval", str(run), "--batch", "10"], ["sample", str(run), "--se", "1"]):
        with pytest.raises(SystemExit) as stop:
            main([*argv, "--out", "x.png"] if argv[0] == "sample" else argv)
        assert stop.value.code == 2
        assert "did you mean" in capsys.readouterr().err


def test_version(capsys):
    # in this process: `python -m dgm` is `raise SystemExit(main())`, whose exit path the
    # misspelled-flag test already takes in a process of its own
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert (
        stop.value.code in (0, None) and capsys.readouterr().out.strip() == f"dgm {dgm.__version__}"
    )


# -- 4: counts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "RUN", "-n", "0", "--out", "OUT"],
        ["sample", "RUN", "-n", "-5", "--out", "OUT"],
        ["sample", "RUN", "--threads", "0", "--out", "OUT"],
        ["eval", "RUN", "--iw-samples", "0"],
        ["eval", "RUN", "--batch-size", "0"],
        ["resume", "RUN", "--steps", "0"],
    ],
)
def test_counts_below_one_are_a_one_line_error(argv, run, tmp_path, capsys):
    argv = [str(run) if a == "RUN" else str(tmp_path / "s.png") if a == "OUT" else a for a in argv]
    before = snapshot(run)
    assert main(argv) == 2
    assert "must be at least 1" in one_line_error(capsys.readouterr().err, argv[0])
    assert snapshot(run) == before and not (tmp_path / "s.png").exists()


# -- 5: where samples go -------------------------------------------------------------------


def test_sample_out_paths_never_give_a_traceback(run, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    refused = {
        afile / "s.png": "afile is a file, not a folder",
        afile / "deeper" / "s.png": "afile is a file, not a folder",
        # the OS's reason, and the folder that could not be made
        "/proc/dgm-first-use/s.png": "cannot write /proc/dgm-first-use/s.png: No such file "
        "or directory (/proc/dgm-first-use)",
        tmp_path: "is a folder: name a picture file",
        tmp_path / "s.xyz": "suffix '.xyz'",
        tmp_path / "samples": "has no suffix",
    }
    for out, message in refused.items():
        assert main(["sample", str(run), "-n", "4", "--out", str(out)]) == 2, out
        assert message in one_line_error(capsys.readouterr().err, "sample"), out

    made = tmp_path / "new" / "deeper" / "s.png"  # missing folders are created
    assert main(["sample", str(run), "-n", "4", "--out", str(made)]) == 0
    assert Image.open(made).format == "PNG"
    for suffix, fmt in ((".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP"), (".bmp", "BMP")):
        assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / f"s{suffix}")]) == 0
        assert Image.open(tmp_path / f"s{suffix}").format == fmt


def test_train_out_under_a_file_or_a_bad_place_is_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, message in (
        (afile, "is a file, not a folder"),
        (afile / "run", "cannot create the run directory"),
        ("/proc/dgm-first-use-run", "cannot create the run directory"),
    ):
        assert main([*DIGITS, *SMALL, "--steps", "2", "--out", str(out)]) == 2
        assert message in one_line_error(capsys.readouterr().err, "train")


# -- 7: resume -----------------------------------------------------------------------------


def test_resume_below_the_current_step_or_of_a_finished_run_changes_nothing(run, capsys):
    before = snapshot(run)
    assert main(["resume", str(run), "--steps", "10"]) == 2
    line = one_line_error(capsys.readouterr().err, "resume")
    assert "already at step 20" in line and "--steps 10" in line
    assert snapshot(run) == before

    for argv in (["resume", str(run)], ["resume", str(run), "--steps", "20"]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "already finished its 20 steps" in out
        assert f"dgm resume {run} --steps N" in out
    assert snapshot(run) == before


# -- 8: evaluation -------------------------------------------------------------------------


def test_eval_with_iw_samples_reports_the_elbo_terms(run, capsys):
    assert main(["eval", str(run), "--json", "--iw-samples", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bound"] == "iwae_5" and result["kl"] >= 0
    assert result["reconstruction"] > 0 and np.isfinite(result["nll"])
    assert main(["eval", str(run), "--json"]) == 0
    elbo = json.loads(capsys.readouterr().out)
    assert elbo["nll"] == pytest.approx(elbo["kl"] + elbo["reconstruction"])


def test_eval_shows_a_progress_bar_only_when_it_takes_a_while(run, capsys, monkeypatch):
    from dgm.evaluate.likelihood import evaluate

    model = dgm.load(run)
    data = dgm.data.get("digits", "test", binarize="static")
    evaluate(model, data, progress=True)
    assert capsys.readouterr().err == ""  # quick: tqdm's delay hides the bar
    slow = model.elbo_terms

    def elbo_terms(x, c=None):
        time.sleep(0.45)
        return slow(x, c)

    monkeypatch.setattr(model, "elbo_terms", elbo_terms)
    evaluate(model, data, batch_size=50, progress=True)  # 6 batches, about 2.7 s
    assert "eval" in capsys.readouterr().err


# -- 9 and 11: the end of a run and its pictures -------------------------------------------


def test_train_ends_with_a_summary_curves_and_a_2d_picture(tmp_path, capsys):
    out = tmp_path / "moons"
    args = ["train", "vae", "--data", "moons", "--num-samples", "400", "--decoder", "gaussian"]
    args += [*SMALL, "--steps", "20", "--eval-every", "10", "--sample-every", "20"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trained to step 20: train loss" in printed and "valid NLL" in printed
    assert f"run directory: {out}" in printed
    assert f"dgm eval {out}" in printed and f"dgm sample {out} --out {out}/samples.png" in printed
    assert "{" not in printed  # no raw JSON

    curves = np.asarray(Image.open(out / "curves.png").convert("RGB"), dtype=int)
    assert curves.shape == (400, 640, 3) and _has_colour(curves, (31, 119, 180))  # C0 line
    assert _has_colour(curves, (255, 127, 14))  # C1: the validation NLL

    picture = np.asarray(Image.open(out / "samples" / "step_0000020.png"), dtype=int)
    assert picture.shape == (384, 384, 3)
    assert _has_colour(picture, (255, 127, 14))  # orange samples
    assert (np.abs(picture - 140).max(axis=-1) < 8).sum() > 300  # grey data points
    assert _has_colour(picture, (8, 48, 107), tol=40)  # the density's darkest blue
    sample = tmp_path / "m.png"
    assert main(["sample", str(out), "-n", "300", "--out", str(sample)]) == 0
    assert Image.open(sample).size == (384, 384)


def test_only_rank_zero_prints_the_summary(run, capsys, monkeypatch):
    model = dgm.load(run)
    monkeypatch.setenv("RANK", "1")
    assert _finish(run, {"step": 20, "loss": 1.0}, model) == 0
    assert capsys.readouterr() == ("", "")
    monkeypatch.setenv("RANK", "0")
    assert _finish(run, {"step": 20, "loss": 1.0}, model) == 0
    assert "trained to step 20" in capsys.readouterr().out


def _has_colour(img, rgb, tol=12):
    return bool((np.abs(img - np.array(rgb)).max(axis=-1) <= tol).sum() > 20)


# -- 10: threads ---------------------------------------------------------------------------


def test_threads_flag_sets_torchs_threads(run, capsys):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert main(["eval", str(run), "--json", "--threads", "3"]) == 0
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    for command in ("train vae", "eval", "sample"):
        with pytest.raises(SystemExit):
            main([*command.split(), "--help"])
        assert "--threads N" in capsys.readouterr().out
