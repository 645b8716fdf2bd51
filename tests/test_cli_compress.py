"""dgm compress / dgm decompress on tiny runs: exact round trips of a .npy, a .pt and a
text file, the printed sizes and bits, and one-line errors (exit 2, no traceback) for a
foreign run, a truncated or corrupted file, a file that is not ours, data outside the
support and a model without conditionals."""

import numpy as np
import pytest
import torch

from dgm.cli import main

QUIET = ["--device", "cpu", "--eval-every", "0", "--sample-every", "0", "--threads", "1"]
TEXT = "the cat sat on the mat\nthe dog ate the hat\n" * 6


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An FVSBN on binarized digits (two seeds), a char-RNN on a small text, a VAE on
    binarized digits and one with a Gaussian decoder (real x: not compressible)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, seed in (("fvsbn", "0"), ("fvsbn2", "1")):
        args = ["train", "fvsbn", "--data", "digits", "--binarize", "static", "--seed", seed]
        assert main([*args, "--steps", "5", *QUIET, "--out", str(root / name)]) == 0
        out[name] = root / name
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT)
    args = ["train", "char_rnn", "--data", "text", "--data-root", str(corpus), "--block-size"]
    args += [
        "8",
        "--hidden-size",
        "8",
        "--num-layers",
        "1",
        "--steps",
        "3",
        "--batch-size",
        "16",
        *QUIET,
    ]
    assert main([*args, "--out", str(root / "rnn")]) == 0
    out["rnn"] = root / "rnn"
    args = ["train", "vae", "--data", "digits", "--latent-dim", "2", "--hidden-sizes", "8"]
    args += ["--steps", "1", *QUIET]
    assert main([*args, "--binarize", "static", "--out", str(root / "vae")]) == 0
    assert main([*args, "--decoder", "gaussian", "--out", str(root / "gauss")]) == 0
    out["vae"], out["gauss"] = root / "vae", root / "gauss"
    return out


def error_line(capsys, argv):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"dgm {argv[0]}: error: "), err
    assert "Traceback" not in captured.err
    return err[0]


@pytest.fixture(scope="module")
def images():
    g = np.random.default_rng(0)
    return (g.random((9, 1, 8, 8)) < 0.3).astype(np.float32)


def test_npy_and_pt_round_trip_exactly_and_print_sizes(runs, images, tmp_path, capsys):
    np.save(tmp_path / "x.npy", images)
    z = tmp_path / "x.dgmz"
    assert main(["compress", str(runs["fvsbn"]), str(tmp_path / "x.npy"), str(z)]) == 0
    text = capsys.readouterr().out
    assert "bits/dim" in text and "model NLL" in text and f"{z.stat().st_size:,} bytes" in text
    source, packed = (tmp_path / "x.npy").stat().st_size, z.stat().st_size
    assert f"{source:,} bytes -> {z}: {packed:,} bytes ({source / packed:.2f}x, " in text
    assert main(["decompress", str(runs["fvsbn"]), str(z), str(tmp_path / "y.npy")]) == 0
    assert f"{z}: {z.stat().st_size:,} bytes -> {tmp_path / 'y.npy'}" in capsys.readouterr().out
    back = np.load(tmp_path / "y.npy")
    assert back.dtype == images.dtype and np.array_equal(back, images)
    torch.save({"x": torch.from_numpy(images).bool()}, tmp_path / "x.pt")
    argv = ["compress", str(runs["fvsbn"]), str(tmp_path / "x.pt"), str(z), "--batch-size", "4"]
    assert main(argv) == 0
    assert main(["decompress", str(runs["fvsbn"]), str(z), str(tmp_path / "y.pt")]) == 0
    back = torch.load(tmp_path / "y.pt")
    assert back.dtype == torch.bool and torch.equal(back, torch.from_numpy(images).bool())


def test_a_vae_run_is_bits_back_coded(runs, images, tmp_path, capsys):
    np.save(tmp_path / "x.npy", images)
    z, out = tmp_path / "x.dgmz", tmp_path / "y.npy"
    assert main(["compress", str(runs["vae"]), str(tmp_path / "x.npy"), str(z)]) == 0
    assert "model −ELBO" in capsys.readouterr().out
    assert main(["decompress", str(runs["vae"]), str(z), str(out)]) == 0
    assert np.array_equal(np.load(out), images)
    line = error_line(capsys, ["decompress", str(runs["fvsbn"]), str(z), str(out)])
    assert "compressed with another model" in line


def test_text_round_trips_exactly(runs, tmp_path, capsys):
    src, z, out = tmp_path / "in.txt", tmp_path / "t.dgmz", tmp_path / "out.txt"
    src.write_bytes(TEXT[:62].encode())  # ends with a space; not whole windows of 8
    assert main(["compress", str(runs["rnn"]), str(src), str(z)]) == 0
    from dgm.tasks.compression.range_coding import payload_bits

    per_char = payload_bits(z.read_bytes()) / 62  # the text's characters, not its padding
    assert f"{per_char:.4f} bits/char" in capsys.readouterr().out
    assert main(["decompress", str(runs["rnn"]), str(z), str(out)]) == 0
    assert out.read_bytes() == src.read_bytes()
    src.write_text("the zebra")
    line = error_line(capsys, ["compress", str(runs["rnn"]), str(src), str(z)])
    assert "not in the run's vocabulary" in line


def test_bad_files_and_runs_are_one_line_errors(runs, images, tmp_path, capsys):
    fv = str(runs["fvsbn"])
    np.save(tmp_path / "x.npy", images)
    z = tmp_path / "x.dgmz"
    assert main(["compress", fv, str(tmp_path / "x.npy"), str(z)]) == 0
    capsys.readouterr()
    blob = z.read_bytes()
    out = str(tmp_path / "y.npy")
    line = error_line(capsys, ["decompress", str(runs["fvsbn2"]), str(z), out])
    assert "compressed with another model" in line
    (tmp_path / "cut.dgmz").write_bytes(blob[:-3])
    assert "truncated" in error_line(capsys, ["decompress", fv, str(tmp_path / "cut.dgmz"), out])
    bad = bytearray(blob)
    bad[-1] ^= 1
    (tmp_path / "bad.dgmz").write_bytes(bytes(bad))
    assert "corrupted" in error_line(capsys, ["decompress", fv, str(tmp_path / "bad.dgmz"), out])
    line = error_line(capsys, ["decompress", fv, str(tmp_path / "x.npy"), out])
    assert "not a dgm compressed file" in line
    line = error_line(capsys, ["decompress", fv, str(z), str(tmp_path / "y.png")])
    assert "name a .npy or .pt file" in line
    np.save(tmp_path / "half.npy", images * 0.5)
    line = error_line(capsys, ["compress", fv, str(tmp_path / "half.npy"), str(z)])
    assert "outside the support" in line
    np.save(tmp_path / "shape.npy", images[:, :, :4])
    line = error_line(capsys, ["compress", fv, str(tmp_path / "shape.npy"), str(z)])
    assert "expected (batch, 1, 8, 8)" in line
    line = error_line(capsys, ["compress", fv, str(tmp_path / "x.txt"), str(z)])
    assert "give the examples as a .npy or .pt file" in line
    np.save(tmp_path / "real.npy", images * 0.5)
    argv = ["compress", str(runs["gauss"]), str(tmp_path / "real.npy"), str(z)]
    line = error_line(capsys, argv)
    assert "no per-dimension conditionals" in line and "fvsbn" in line and "bits-back" in line
    line = error_line(capsys, ["compress", str(tmp_path / "nope"), str(tmp_path / "x.npy"), str(z)])
    assert "give a run directory" in line


def test_a_file_given_to_a_model_that_cannot_code_says_it_is_another_models(tmp_path, capsys):
    # a MADE's file handed to a VAE run: the file's model is the problem, not the VAE's
    # missing conditionals
    made, vae = tmp_path / "made", tmp_path / "vae"
    flags = ["--data", "digits", "--binarize", "static", "--steps", "2", "--batch-size", "16"]
    assert main(["train", "made", *flags, "--out", str(made)]) == 0
    assert main(["train", "vae", *flags, "--out", str(vae)]) == 0
    x = (np.random.default_rng(0).random((2, 1, 8, 8)) > 0.5).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["compress", str(made), str(tmp_path / "x.npy"), str(tmp_path / "x.dgmz")]) == 0
    capsys.readouterr()
    args = ["decompress", str(vae), str(tmp_path / "x.dgmz"), str(tmp_path / "y.npy")]
    assert main(args) == 2
    assert "compressed with another model" in capsys.readouterr().err
