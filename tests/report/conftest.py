"""Tiny trained runs shared by the report tests (trained once per session)."""

import pytest

from dgm.cli import main

QUIET = ["--device", "cpu", "--sample-every", "0", "--threads", "1"]


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """A VAE on binarized digits (validated twice), a GMM on moons, a GAN on moons and a
    character RNN on words, a few steps each."""
    root = tmp_path_factory.mktemp("runs")
    args = {
        "vae": "vae --data digits --binarize static --latent-dim 2 --hidden-sizes 16 "
        "--steps 20 --batch-size 32 --eval-every 10",
        "gmm": "gmm --data moons --steps 3 --eval-every 0",
        "gan": "gan --data moons --steps 4 --batch-size 32 --hidden-sizes 16 --latent-dim 2 "
        "--eval-every 0",
        "char_rnn": "char_rnn --data words --steps 3 --batch-size 8 --eval-every 0",
    }
    for name, argv in args.items():
        assert main(["train", *argv.split(), *QUIET, "--out", str(root / name)]) == 0
    return {name: root / name for name in args}
