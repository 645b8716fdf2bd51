"""`dgm sample` flags come from the model's sampling options; context-conditional runs
sample on the test split's contexts; conditioning errors speak in CLI words."""

import numpy as np
import pytest
from PIL import Image

from dgm.cli import main

BASE = ["--steps", "20", "--batch-size", "32", "--device", "cpu", "--latent-dim", "2"]
BASE += ["--hidden-sizes", "16", "--eval-every", "0", "--sample-every", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    plain, sr = root / "plain", root / "sr"
    assert main(["train", "vae", "--data", "digits", "--binarize", "static", *BASE,
                 "--out", str(plain)]) == 0  # fmt: skip
    assert main(["train", "vae", "--data", "digits", "--binarize", "static", "--condition",
                 "lowres", "--lowres-factor", "2", *BASE, "--out", str(sr)]) == 0  # fmt: skip
    return plain, sr


def pixels(path):
    return np.asarray(Image.open(path), dtype=np.float64)


def test_sampling_option_flags_come_from_the_model(runs, tmp_path, capsys):
    plain, _ = runs
    draws, means = tmp_path / "d.png", tmp_path / "m.png"
    assert main(["sample", str(plain), "-n", "16", "--out", str(draws)]) == 0
    assert main(["sample", str(plain), "-n", "16", "--mean", "--out", str(means)]) == 0
    assert set(np.unique(pixels(draws))) <= {0.0, 128.0, 255.0}  # binary pixels, grey pad
    assert len(np.unique(pixels(means))) > 10  # probabilities: shades of grey
    cold = tmp_path / "t.png"
    assert (
        main(["sample", str(plain), "-n", "16", "--temperature", "0.01", "--out", str(cold)]) == 0
    )
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["sample", str(plain), "-n", "4", "--temprature", "1", "--out", str(cold)])
    assert "--temprature" in capsys.readouterr().err


def test_the_seed_picks_the_draws(runs, tmp_path):
    """dgm sample --seed S gives the same draws for the same S and others for another,
    and S is the library's: model.sample with a generator seeded S."""
    import torch

    import dgm

    plain, _ = runs
    drawn = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = tmp_path / f"{name}.npy"
        assert main(["sample", str(plain), "-n", "6", "--seed", str(seed), "--out", str(out)]) == 0
        drawn[name] = np.load(out)
    assert np.array_equal(drawn["a"], drawn["b"]) and not np.array_equal(drawn["a"], drawn["c"])
    model = dgm.load(plain)
    with torch.no_grad():
        again = model.sample(6, generator=torch.Generator().manual_seed(1))
    assert np.array_equal(drawn["c"], again.numpy())


def test_a_context_conditional_run_samples_on_test_contexts(runs, tmp_path, capsys):
    _, sr = runs
    out = tmp_path / "sr.png"
    assert main(["sample", str(sr), "-n", "8", "--mean", "--out", str(out)]) == 0
    assert out.is_file()
    assert main(["eval", str(sr), "--json"]) == 0
    capsys.readouterr()
    assert main(["sample", str(sr), "-n", "4", "--class", "3", "--out", str(out)]) == 2
    assert "--class needs a class-conditional model" in capsys.readouterr().err


def test_class_on_an_unconditional_run_names_the_flag(runs, tmp_path, capsys):
    plain, _ = runs
    assert (
        main(["sample", str(plain), "-n", "4", "--class", "3", "--out", str(tmp_path / "x.png")])
        == 2
    )
    assert "trained without --num-classes" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("char_rnn", ["--hidden-size", "16", "--num-layers", "1", "--embedding-dim", "8"]),
        ("gpt", ["--n-layer", "1", "--n-head", "2", "--n-embd", "8"]),
    ],
)
def test_a_text_run_continues_a_prompt_and_names_an_unseen_character(name, flags, tmp_path, capsys):
    import random

    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "mat", "then", "hat"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(" ".join(rng.choice(words) for _ in range(800)), encoding="utf-8")
    run, out = tmp_path / "run", tmp_path / "out.txt"
    assert main(["train", name, "--data", "text", "--data-root", str(corpus), "--block-size",
                 "10", "--steps", "5", "--batch-size", "16", "--eval-every", "0",
                 "--sample-every", "0", *flags, "--out", str(run)]) == 0  # fmt: skip
    assert main(["sample", str(run), "-n", "6", "--prompt", "the ", "--temperature", "0.8",
                 "--out", str(out)]) == 0  # fmt: skip
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 and all(line.startswith("the ") for line in lines)
    assert len({line[4:] for line in lines}) > 1  # the rest is drawn
    capsys.readouterr()
    assert main(["sample", str(run), "--prompt", "thQ", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'Q'" in err and "never had" in err and "Traceback" not in err
    assert main(["sample", str(run), "--prompt", "the mat sat", "--out", str(out)]) == 2
    assert "prompt has 11 tokens but sequences have T = 10" in capsys.readouterr().err


def test_batched_draws_give_each_batch_its_own_conditions():
    """n = 10 in batches of 4: the model sees c[0:4], c[4:8], c[8:10], and the options
    and generator reach every call (one batch, as in the other tests, hides a slice)."""
    import torch

    from dgm.evaluate.sample_quality import draw
    from dgm.model import sample_batches

    class Echo:
        def __init__(self):
            self.seen = []

        def sample(self, n, c, *, generator=None, **options):
            self.seen.append((n, c.tolist(), options, generator))
            return c[:, None].float() * options["scale"]

    c, g = torch.arange(10), torch.Generator()
    model = Echo()
    out = torch.cat(list(sample_batches(model, 10, c, 4, g, scale=2.0)))
    assert [(n, part) for n, part, _, _ in model.seen] == [
        (4, [0, 1, 2, 3]),
        (4, [4, 5, 6, 7]),
        (2, [8, 9]),
    ]
    assert all(o == {"scale": 2.0} and gen is g for _, _, o, gen in model.seen)
    assert torch.equal(out[:, 0], 2.0 * c)
    assert torch.equal(
        draw(Echo(), 10, c, batch_size=3, generator=g, options={"scale": 1.0})[:, 0], c.float()
    )
