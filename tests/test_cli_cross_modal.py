"""Text to image and image to text from the command line: a VAE trained on
fashion_mnist_text samples for a --caption, a char_rnn trained on fashion_mnist_captions
captions the test images and scores the captions; wrong captions are one-line errors."""

import numpy as np
from PIL import Image

import dgm
from dgm.cli import main
from dgm.data.captions import VOCAB
from system_files import FASHION_MNIST

pytestmark = FASHION_MNIST
QUICK = ["--steps", "3", "--batch-size", "16", "--device", "cpu", "--eval-every", "0"]
QUICK += ["--sample-every", "0"]


def test_text_to_image_samples_for_a_caption(tmp_path, capsys):
    run = tmp_path / "t2i"
    flags = ["--data", "fashion_mnist_text", "--binarize", "dynamic", "--latent-dim", "2"]
    flags += ["--hidden-sizes", "16", "--text-features", "8", *QUICK]
    assert main(["train", "vae", *flags, "--out", str(run)]) == 0
    hint = capsys.readouterr().out  # the next step draws a picture, not text
    assert "samples.png" in hint and "samples.txt" not in hint
    model = dgm.load(run)
    assert model.conditioning.context_vocab == len(VOCAB)
    assert model.conditioning.context_shape == (16,)
    out = tmp_path / "sneakers.png"
    assert main(["sample", str(run), "--caption", "a sneaker", "-n", "4", "--out", str(out)]) == 0
    sneakers = np.asarray(Image.open(out))
    assert set(np.unique(sneakers)) <= {0, 128, 255}  # binary draws
    bags = tmp_path / "bags.png"  # the prompt reaches c: same seed, another text, other draws
    assert main(["sample", str(run), "--caption", "a bag", "-n", "4", "--out", str(bags)]) == 0
    assert not np.array_equal(np.asarray(Image.open(bags)), sneakers)
    assert main(["sample", str(run), "--caption", "a sneaker", "-n", "4", "--out", str(bags)]) == 0
    assert np.array_equal(np.asarray(Image.open(bags)), sneakers)
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "test.png")]) == 0
    capsys.readouterr()
    bad = ["sample", str(run), "--caption", "A sneaker", "-n", "2", "--out", str(out)]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'A'" in err and "vocabulary" in err
    long = ["sample", str(run), "--caption", "a" * 17, "-n", "2", "--out", str(out)]
    assert main(long) == 2 and "at most 16" in capsys.readouterr().err


def test_image_to_text_captions_test_images_and_scores_them(tmp_path, capsys):
    run = tmp_path / "i2t"
    flags = ["--data", "fashion_mnist_captions", "--cell", "gru", "--hidden-size", "8"]
    flags += ["--num-layers", "1", "--embedding-dim", "4", *QUICK]
    assert main(["train", "char_rnn", *flags, "--out", str(run)]) == 0
    assert "samples.txt" in capsys.readouterr().out
    model = dgm.load(run)
    assert model.conditioning.context_shape == (1, 28, 28) and model.config.vocab_size == 29
    out = tmp_path / "captions.txt"
    assert main(["sample", str(run), "-n", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 8
    assert "caption accuracy: " in printed and " of 8 captions name their image's class" in printed
    # scored against the first 8 test images, the ones the captions were drawn for
    from dgm.data import get
    from dgm.evaluate.caption_accuracy import caption_accuracy_line

    test = get("fashion_mnist_captions", "test")
    assert caption_accuracy_line(test, out.read_text().splitlines()) in printed
    prefixed = ["sample", str(run), "-n", "3", "--prompt", "a ", "--out", str(out)]
    assert main(prefixed) == 0  # a sequence model's own prompt: the start of every caption
    assert all(line.startswith("a ") for line in out.read_text().splitlines())


def test_a_caption_for_a_model_without_a_text_context_names_the_fix(tmp_path, capsys):
    run = tmp_path / "digits"
    flags = ["--data", "digits", "--binarize", "static", "--hidden-sizes", "8", *QUICK]
    assert main(["train", "vae", *flags, "--out", str(run)]) == 0
    capsys.readouterr()
    bad = ["sample", str(run), "--caption", "a bag", "--out", str(tmp_path / "x.png")]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fashion_mnist_text" in err and "takes no c" in err
