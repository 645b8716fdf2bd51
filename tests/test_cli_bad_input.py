"""Issue 19, part 3 and part 4's flags: what a user typed that was silently wrong, a
traceback or a blow-up. Each case must be one line naming the problem and the fix, exit 2,
and nothing written; each test replays the command in-process through ``dgm.cli.main``."""

import json

import numpy as np
import pytest
import torch

from dgm.cli import main
from dgm.train import memory

QUIET = ["--eval-every", "0", "--sample-every", "0", "--device", "cpu"]


def snapshot(folder):
    """Every path under ``folder`` with its bytes (files) or None (folders)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


def refused(capsys, argv, *phrases, folder=None):
    """Run ``dgm ARGV``: exit 2, one line ``dgm VERB: error: ...`` holding every phrase,
    no traceback, and (with ``folder``) nothing written there. Returns the line."""
    before = snapshot(folder) if folder is not None else None
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"dgm {argv[0]}: error: "), err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    if folder is not None:
        assert snapshot(folder) == before, "a refused command wrote files"
    return lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny finished runs: a 2-D MAF, a binarized-digits VAE, a character RNN, a Bayesian
    network on a table and a 2-D EBM."""
    root = tmp_path_factory.mktemp("runs")
    words = root / "words.txt"
    words.write_text("\n".join(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"] * 4))
    commands = {
        "maf": ["maf", "--data", "moons", "--hidden-sizes", "8", "--num-transforms", "2"],
        "vae": ["vae", "--data", "digits", "--binarize", "static", "--latent-dim", "2"],
        "txt": ["char_rnn", "--data", "words", "--data-root", words, "--hidden-size", "8"],
        "bn": ["bayes_net", "--data", "wine_bins"],
        "ebm": ["ebm", "--data", "moons", "--hidden-sizes", "8", "--sgld-steps", "2"],
    }
    for name, argv in commands.items():
        size = ["--batch-size", "4"] if name == "txt" else ["--batch-size", "32"]
        if name == "vae":
            argv = [*argv, "--hidden-sizes", "8"]
        if name == "txt":
            argv = [*argv, "--num-layers", "1", "--embedding-dim", "4"]
        out = root / name
        assert (
            main(["train", *map(str, argv), *QUIET, *size, "--steps", "2", "--out", str(out)]) == 0
        )
    return {name: root / name for name in commands}


# -- silently wrong --------------------------------------------------------------------------


def test_realnvp_on_digits_levels_is_refused_and_dequantized_run_reports_the_bound(
    tmp_path, capsys
):
    out = tmp_path / "rnvp"
    base = ["train", "realnvp", "--data", "digits", *QUIET, "--steps", "2", "--batch-size", "32"]
    base += ["--architecture", "mlp", "--hidden-sizes", "8", "--num-couplings", "2"]
    line = refused(capsys, [*base, "--out", out], "17 discrete levels", "--dequantize uniform")
    assert "--scale byte" in line
    assert not out.exists()
    for binarize in ("static", "dynamic"):  # 2 levels: a binary model is the fix
        argv = [*base, "--binarize", binarize, "--out", out]
        line = refused(capsys, argv, "2 discrete levels", "model binary data with nade")
        assert "--scale byte" not in line and not out.exists()
    assert main([*base, "--scale", "byte", "--dequantize", "uniform", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bound"] == "dequantized" and result["bits_per_dim"] > 0


def test_csv_with_one_word_in_a_numeric_column_is_refused_naming_the_cell(tmp_path, capsys):
    table = tmp_path / "t.csv"
    rows = ["a,b,colour"] + [f"{i},{i * 2},{'red' if i % 2 else 'blue'}" for i in range(30)]
    rows[8] = "7,oops,red"  # line 9 of the file
    table.write_text("\n".join(rows) + "\n")
    argv = ["train", "gmm", "--data", "csv", "--data-root", table, *QUIET, "--steps", "1"]
    line = refused(capsys, [*argv, "--out", tmp_path / "r"], "line 9", "'b'", "'oops'")
    assert "leave it empty" in line and not (tmp_path / "r").exists()
    assert "more)" not in line  # one word in the column
    rows[12], rows[20] = "11,x,red", "19,y,red"  # two more words, after the first
    table.write_text("\n".join(rows) + "\n")
    line = refused(capsys, [*argv, "--out", tmp_path / "r"], "line 9", "'oops'", "(and 2 more)")
    rows[8], rows[12], rows[20] = "7,,red", "11,22,red", "19,38,red"
    # empty: missing; the all-word column stays categorical
    table.write_text("\n".join(rows) + "\n")
    from dgm.data import get

    x = get("csv", "train", str(table)).x
    assert set(x[:, 2].tolist()) <= {0.0, 1.0} and bool(torch.isnan(x[:, 1]).any())


def test_interpolate_on_points_writes_its_out_or_refuses_a_picture(runs, tmp_path, capsys):
    argv = ["interpolate", runs["maf"], "--a", "0", "--b", "1", "--steps", "5"]
    refused(capsys, [*argv, "--out", tmp_path / "i.png"], ".npy or .pt", folder=tmp_path)
    assert main([*map(str, argv), "--out", str(tmp_path / "i.npy")]) == 0
    strip = np.load(tmp_path / "i.npy")
    assert strip.shape == (7, 2) and np.isfinite(strip).all()


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
@pytest.mark.parametrize("run", ["maf", "vae"])
def test_temperature_must_be_finite_and_positive(runs, tmp_path, capsys, value, run):
    argv = ["sample", runs[run], "--temperature", value, "--out", tmp_path / "s.png"]
    # 0 is each model's to define (a GAN's G(0)); these two refuse it with their own words
    phrase = "temperature must be" if value == "0" else "must be a finite number, not negative"
    refused(capsys, argv, phrase, folder=tmp_path)


def test_counts_where_zero_means_nothing_are_refused_alike(runs, tmp_path, capsys):
    train = ["train", "ebm", "--data", "moons", *QUIET, "--steps", "1", "--out", tmp_path / "e"]
    refused(capsys, [*train, "--sgld-steps", "0"], "--sgld-steps must be at least 1, got 0")
    sample = ["sample", runs["ebm"], "--out", tmp_path / "s.png"]
    refused(capsys, [*sample, "--sampling-steps", "0"], "--sampling-steps must be at least 1")
    train = ["train", "maf", "--data", "moons", *QUIET, "--steps", "1", "--out", tmp_path / "m"]
    refused(capsys, [*train, "--hidden-sizes", "-5"], "--hidden-sizes must be positive", "-5")
    assert not any(tmp_path.iterdir())


def test_an_out_suffix_that_cannot_hold_the_samples_is_refused(runs, tmp_path, capsys):
    refused(capsys, ["sample", runs["txt"], "--out", tmp_path / "x.png"], ".txt", folder=tmp_path)
    refused(
        capsys, ["sample", runs["bn"], "--out", tmp_path / "s.png"], ".npy or .pt", folder=tmp_path
    )
    assert main(["sample", str(runs["txt"]), "-n", "5", "--out", str(tmp_path / "x.txt")]) == 0
    assert len((tmp_path / "x.txt").read_text().splitlines()) == 5
    assert main(["sample", str(runs["bn"]), "-n", "5", "--out", str(tmp_path / "s.pt")]) == 0
    drawn = torch.load(tmp_path / "s.pt", weights_only=True)
    assert drawn.shape == (5, 13) and drawn.dtype == torch.long


# -- tracebacks ------------------------------------------------------------------------------


def test_unsafe_complex_and_one_axis_arrays_are_refused_with_the_fix(tmp_path, capsys):
    import collections

    pickled = tmp_path / "p.pt"
    torch.save({"x": torch.zeros(50, 3), "meta": collections.OrderedDict(a=object)}, pickled)
    complex_ = tmp_path / "c.npy"
    np.save(complex_, np.ones((50, 3), dtype=np.complex64))
    flat = tmp_path / "one.npy"
    np.save(flat, np.ones(500, dtype=np.float32))
    argv = ["train", "maf", "--data", "tensors", *QUIET, "--steps", "1", "--out", tmp_path / "r"]
    line = refused(capsys, [*argv, "--data-root", pickled], "for safety", "torch.save")
    assert "weights_only" not in line
    refused(capsys, [*argv, "--data-root", complex_], "complex", "x.real, x.imag")
    refused(capsys, [*argv, "--data-root", flat], "(500,)", "x.reshape(-1, 1)", "(500, 1)")
    assert not (tmp_path / "r").exists()


def test_a_model_too_large_for_the_machine_is_refused_with_its_estimate(tmp_path, capsys):
    argv = ["train", "pixelcnn", "--data", "digits", "--scale", "byte", *QUIET, "--steps", "1"]
    line = refused(
        capsys, [*argv, "--hidden-channels", "100000", "--out", tmp_path / "p"], "GiB", "--force"
    )
    assert "parameters" in line and not (tmp_path / "p").exists()


def test_the_memory_check_uses_the_available_memory_and_force_goes_on(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 2**10)  # 1 KiB free
    argv = ["train", "bayes_net", "--data", "digits", "--scale", "byte", *QUIET, "--steps", "1"]
    argv += ["--num-categories", "256"]
    line = refused(capsys, [*argv, "--out", tmp_path / "b"], "working tables", "0.00 GiB available")
    assert "4.0" in line  # (64, 64, 256, 256) float64 pair counts, twice: 4.0 GiB
    small = ["train", "ebm", "--data", "moons", *QUIET, "--steps", "1", "--hidden-sizes", "4"]
    small += ["--sgld-steps", "1", "--batch-size", "32"]
    refused(capsys, [*small, "--out", tmp_path / "m"], "--force")
    assert main([*small, "--force", "--out", str(tmp_path / "m")]) == 0


def test_gpt_with_a_million_token_block_is_refused_before_allocating(tmp_path, capsys):
    book = tmp_path / "book.txt"
    book.write_text("abcdefgh \n" * 210_000)  # 2.1 M characters: a few 1 M windows
    argv = ["train", "gpt", "--data", "text", "--data-root", book, "--block-size", "1000000"]
    argv += [*QUIET, "--steps", "1", "--batch-size", "1"]
    refused(capsys, [*argv, "--out", tmp_path / "g"], "activations", "GiB", "--batch-size")
    assert not (tmp_path / "g").exists()


def test_many_samples_stream_to_npy_in_batches_and_a_huge_picture_is_refused(
    runs, tmp_path, capsys, monkeypatch
):
    refused(
        capsys,
        ["sample", runs["vae"], "-n", "10000000", "--out", tmp_path / "big.png"],
        "--out FILE.npy",
        folder=tmp_path,
    )
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 2**20)
    refused(
        capsys,
        ["sample", runs["bn"], "-n", "100000", "--out", tmp_path / "big.pt"],
        "FILE.npy",
        "--force",
        folder=tmp_path,
    )
    from dgm.registry import spec

    sizes = []
    cls = spec("bayes_net").cls
    original = cls.sample
    monkeypatch.setattr(
        cls, "sample", lambda self, n, *a, **k: sizes.append(n) or original(self, n, *a, **k)
    )
    argv = ["sample", runs["bn"], "-n", "2500", "--batch-size", "1000", "--out", tmp_path / "s.npy"]
    assert main([str(a) for a in argv]) == 0
    assert sizes == [1000, 1000, 500]
    drawn = np.load(tmp_path / "s.npy")
    assert drawn.shape == (2500, 13) and 0 <= drawn.min() and drawn.max() <= 2


# -- confusing -------------------------------------------------------------------------------


def test_naive_bayes_on_a_two_class_csv_with_missing_values_trains_and_classifies(tmp_path, capsys):
    gen = np.random.default_rng(0)
    y = gen.integers(0, 2, 200)
    x = (gen.random((200, 3)) < np.where(y[:, None] == 1, 0.8, 0.2)).astype(float)
    x[gen.random(x.shape) < 0.2] = np.nan
    rows = ["a,b,c,label"] + [
        ",".join("" if np.isnan(v) else str(int(v)) for v in r) + f",{t}"
        for r, t in zip(x, y, strict=True)
    ]
    table = tmp_path / "t.csv"
    table.write_text("\n".join(rows) + "\n")
    run = tmp_path / "nb"
    argv = ["train", "naive_bayes", "--data", "csv", "--data-root", str(table)]
    assert main([*argv, "--label-column", "label", *QUIET, "--steps", "1", "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["model_config"]["num_classes"] == 2
    capsys.readouterr()
    assert main(["classify", str(run), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "logistic regression" in out and "missing values" in out and "training mean" in out


def test_report_to_an_unwritable_folder_names_the_path_and_the_reason(runs, capsys):
    line = refused(
        capsys, ["report", runs["maf"], "--out", "/proc/report.html"], "/proc/report.html"
    )
    assert ".tmp" not in line and "/proc does not take new files" in line


# -- one flag, one meaning -------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, old, new",
    [
        (["anomaly", "{vae}", "--out", "uniform_noise"], "--out", "--ood"),
        (["anomaly", "{vae}", "--ood", "mnist", "--out-root", "x"], "--out-root", "--ood-root"),
        (
            ["sample", "{ebm}", "--steps", "5", "--out", "{tmp}/s.png"],
            "--steps",
            "--sampling-steps",
        ),
        (["eval", "{ebm}", "--sample-quality", "--steps", "5"], "--steps", "--sampling-steps"),
        (["eval", "{ebm}", "--sample-quality", "--steps=5"], "--steps", "--sampling-steps"),
        (["anomaly", "{vae}", "--ood", "mnist", "--out-root=x"], "--out-root", "--ood-root"),
        (["impute", "{bn}", "--mask", "random-50"], "random-50", "--mask random"),
    ],
)
def test_renamed_flags_and_mask_names_are_refused_naming_the_new_ones(
    runs, tmp_path, capsys, argv, old, new
):
    argv = [a.format(tmp=tmp_path, **runs) for a in argv]
    refused(capsys, argv, old, new, folder=tmp_path)


def test_impute_and_complete_share_mask_names(runs, tmp_path, capsys):
    from dgm.tasks import impute, inpaint

    assert impute.MASK_KINDS == inpaint.MASKS
    argv = ["impute", str(runs["bn"]), "--mask", "random", "-n", "10", "-m", "2", "--json"]
    assert main([*argv, str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["mask"] == "random"
    argv = ["impute", str(runs["vae"]), "--mask", "top-half", "-n", "4", "-m", "1"]
    assert main([*argv, "--out", str(tmp_path / "top.png")]) == 0
    assert (tmp_path / "top.png").is_file()


def test_resume_takes_threads(runs, capsys):
    assert main(["resume", str(runs["maf"]), "--threads", "1"]) == 0
    assert "already finished" in capsys.readouterr().out
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize(
    "name, shape, config",
    [
        ("vae", (1, 8, 8), {"latent_dim": 2, "hidden_sizes": (16,)}),
        ("pixelcnn", (1, 8, 8), {"hidden_channels": 8}),
        ("gpt", (16,), {"vocab_size": 11, "n_embd": 8, "n_head": 2, "n_layer": 1}),
        ("bayes_net", (5,), {"num_categories": 4}),
    ],
)
def test_the_meta_count_is_the_real_models_size(name, shape, config):
    import dgm

    est = memory.estimate_training(name, shape, config, batch_size=8)
    real = dgm.create(name, shape, **config)
    tensors = [*real.parameters(), *real.buffers()]
    assert est.parameters == sum(t.numel() for t in tensors)
    assert est.parameter_bytes == sum(t.numel() * t.element_size() for t in tensors)
    trained = sum(p.numel() * p.element_size() for p in real.parameters() if p.requires_grad)
    assert est.optimizer_bytes == 3 * trained
    assert est.working_bytes == real.working_memory_bytes(8)


def test_traced_activations_grow_with_the_batch_and_the_block():
    config = {"vocab_size": 11, "n_embd": 8, "n_head": 2, "n_layer": 1}
    small, double, longer = (
        memory.estimate_training("gpt", (t,), config, batch_size=b).activation_bytes
        for t, b in ((32, 2), (32, 4), (64, 2))
    )
    assert small > 0 and 1.9 * small < double <= 2 * small  # all but position embeddings
    assert longer >= 2 * small  # module outputs grow with T (attention scores are not counted)


def test_traced_activations_count_every_phase_of_a_step():
    """A GAN's step is n_critic discriminator phases, then the generator's: one more critic
    phase adds the discriminator phase's bytes (D), and the generator phase adds its own."""
    one, two = (
        memory.estimate_training(
            "gan", (4,), {"hidden_sizes": (8,), "latent_dim": 2, "n_critic": k}, batch_size=8
        ).activation_bytes
        for k in (1, 2)
    )
    critic = two - one  # D
    assert critic > 0 and one - critic > 0  # G = (D + G) − D
