"""Every dataset's typed description (``DataInfo``) against its data, its options
dataclass through JSON, a wrong dataset's option refused by name, and the flat
``"data"`` section older runs wrote."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dgm import config as cfg
from dgm.data import DataConfig, available_datasets, dataset_options, get
from dgm.data.dataset import dataset_spec, make_options
from dgm.data.idx import write_idx

# config.json's "data" section exactly as the code before per-dataset options wrote it
OLD_DATA_SECTION = {
    "name": "digits",
    "root": None,
    "binarize": "static",
    "scale": None,
    "valid_fraction": 0.25,
    "test_fraction": None,
    "data_seed": 3,
    "num_samples": None,
    "condition": None,
    "lowres_factor": None,
    "image_size": None,
    "channels": None,
    "label_column": None,
    "block_size": None,
}


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """A small --data-root for every dataset that reads files (None: it needs none)."""
    tmp = tmp_path_factory.mktemp("roots")
    idx = tmp / "idx"
    idx.mkdir()
    gen = np.random.default_rng(0)
    for stem, n in (("train", 60), ("t10k", 20)):
        write_idx(idx / f"{stem}-images-idx3-ubyte", gen.integers(0, 256, (n, 28, 28), np.uint8))
        write_idx(idx / f"{stem}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
    arrays = tmp / "x.npy"
    np.save(arrays, gen.normal(size=(50, 3)).astype(np.float32))
    table = tmp / "t.csv"
    rows = [f"{i % 3},{'ab'[i % 2]},{i % 4}" for i in range(40)]
    table.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    pictures = tmp / "pictures"
    from PIL import Image

    for colour in ("red", "blue"):
        (pictures / colour).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (6, 6), colour).save(pictures / colour / f"{i}.png")
    text = tmp / "story.txt"
    text.write_text("once upon a time there was a tiny model\n" * 40)
    fortunes = tmp / "fortunes"
    fortunes.mkdir()
    (fortunes / "wisdom").write_text("a fortune a day\n%\nkeeps the doctor away\n%\n" * 30)
    words = tmp / "words.txt"
    words.write_text("\n".join(["cat", "dog", "emu", "owl", "yak", "gnu"] * 10))
    by_name = {
        "fashion_mnist": idx,
        "mnist": idx,
        "fashion_mnist_text": idx,
        "fashion_mnist_captions": idx,
        "tensors": arrays,
        "csv": table,
        "csv_categorical": table,
        "images": pictures,
        "text": text,
        "fortunes": fortunes,
        "words": words,
        "shuffled_words": words,
    }
    return {name: str(by_name[name]) if name in by_name else None for name in available_datasets()}


def test_every_dataset_has_an_options_dataclass_and_a_root_here(roots):
    for name in available_datasets():
        options = dataset_spec(name).options
        assert dataclasses.is_dataclass(options) and options.__dataclass_params__.frozen
        defaults = {f.name: f.default for f in dataclasses.fields(options)}
        assert dataset_options(name) == defaults, name
    assert set(roots) == set(available_datasets())


def test_the_image_loaders_share_one_options_class():
    images = ("fashion_mnist", "mnist", "digits", "mnist_subset", "digits28")
    assert len({dataset_spec(n).options for n in images}) == 1
    assert issubclass(dataset_spec("uniform_noise").options, dataset_spec("digits").options)


@pytest.mark.parametrize("name", available_datasets())
def test_each_datasets_options_round_trip_through_config_json(name, roots):
    defaults = dataset_options(name)
    # a value other than the default for every option that has a simple one
    changed = {
        k: (v + 1 if isinstance(v, int) and not isinstance(v, bool) else v / 2)
        for k, v in defaults.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "channels"
    }
    data = DataConfig(name, roots[name], **changed)
    text = json.dumps(cfg.to_dict(data))
    back = cfg.from_dict(DataConfig, json.loads(text))
    assert back == data and back.options == changed
    typed = back.typed()
    assert type(typed) is dataset_spec(name).options
    assert dataclasses.asdict(typed) == {**defaults, **changed}
    assert make_options(name, {}) == dataset_spec(name).options()  # no option: the defaults


def test_an_option_of_another_dataset_is_refused_naming_the_datasets_that_take_it():
    with pytest.raises(ValueError) as e:
        DataConfig("moons", block_size=8)
    message = str(e.value)
    assert "\n" not in message and "'moons'" in message and "--block-size" in message
    assert "text" in message and "words" in message  # who takes it
    with pytest.raises(ValueError, match=r"'digits' takes no option 'num_samples'.*moons"):
        get("digits", "train", num_samples=5)
    with pytest.raises(ValueError, match="no dataset takes it"):
        DataConfig("digits", colour="red")


def test_the_cli_refuses_a_wrong_dataset_option_in_one_line(tmp_path, capsys):
    from dgm.cli import main

    out = str(tmp_path / "r")
    code = main(
        ["train", "vae", "--data", "moons", "--block-size", "8", "--steps", "1", "--out", out]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "'moons' takes no option --block-size" in err and "text" in err
    assert not (tmp_path / "r").exists()


def test_train_help_groups_the_data_flags_by_dataset(capsys):
    from dgm.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "data options of digits, digits28, fashion_mnist, mnist, mnist_subset:" in out
    assert "data options of fortunes, text:" in out
    for flag in ("--binarize", "--block-size", "--num-samples", "--data-seed", "--label-column"):
        assert out.count(flag + " ") >= 1, flag


def test_a_data_section_as_older_runs_wrote_it_still_loads():
    old = cfg.from_dict(DataConfig, OLD_DATA_SECTION)
    assert old == DataConfig("digits", binarize="static", valid_fraction=0.25, data_seed=3)
    assert old.options == {"binarize": "static", "valid_fraction": 0.25, "seed": 3}
    a, b = old.load("valid"), get("digits", "valid", binarize="static", valid_fraction=0.25, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert len(b) != len(get("digits", "valid"))  # the saved options were applied
    assert cfg.from_dict(DataConfig, cfg.to_dict(old)) == old  # and the new form round-trips


TOKENS = ("text", "fortunes", "words", "shuffled_words", "fashion_mnist_captions")
POINTS = ("moons", "eight_gaussians", "grid25", "checkerboard", "two_circles", "pinwheel")
VECTORS = (
    "tensors",
    "csv",
    "csv_categorical",
    "wine_bins",
    "breast_cancer_bins",
    "hmm_gaussian",
    "transitions",
)


# shards: a converted copy of another dataset, whose DataInfo it keeps (tests/data/test_shards.py)
@pytest.mark.parametrize("name", [n for n in available_datasets() if n != "shards"])
def test_data_info_describes_the_data(name, roots):
    data = get(name, "train", roots[name])
    info = data.info
    x = data.x
    assert info.name == name
    kind = {**dict.fromkeys(TOKENS, "tokens"), **dict.fromkeys(POINTS, "points")}
    kind |= dict.fromkeys(VECTORS, "vectors")
    assert info.modality == kind.get(name, "image")
    assert (info.vocab is not None) == (name in TOKENS or name == "fashion_mnist_text")
    assert (info.value_range is not None) == (info.modality == "image")
    assert info.event_shape == tuple(x.shape[1:]) and info.dtype == x.dtype
    if info.value_range is not None:
        low, high = info.value_range
        assert low <= float(x.min()) and float(x.max()) <= high
    if info.vocab is not None and not info.context_vocab:  # x are the tokens
        assert not x.is_floating_point() and int(x.max()) < len(info.vocab)
        assert info.modality == "tokens"
    if info.end_token is not None:
        assert info.vocab is not None and info.vocab[info.end_token] == "\n"
    assert info.num_classes > int(data.y.max()) or (info.num_classes == 0 and data.y.max() == 0)
    assert info.class_names == () or len(info.class_names) == info.num_classes
    if data.context is None:
        assert info.context_shape == () and info.context_vocab == 0
    else:
        assert info.context_shape == tuple(data.context.shape[1:])
        if info.context_vocab:  # c is a text of the vocabulary
            assert info.vocab is not None and info.context_vocab == len(info.vocab)
            assert not data.context.is_floating_point()
            assert int(data.context.max()) < info.context_vocab
    assert data.subset(torch.arange(3)).info == info  # the description survives subsets
    assert data.to("cpu").info == info


def test_data_info_knows_the_names_and_kinds():
    digits = get("digits", "test", scale="byte").info
    assert digits.class_names == tuple("0123456789") and digits.value_range == (0.0, 255.0)
    assert digits.modality == "image" and digits.dtype == torch.uint8
    assert get("moons", "test", num_samples=4).info.modality == "points"
    assert get("wine_bins", "test").info.modality == "vectors"
    lowres = get("digits", "test", condition="lowres", lowres_factor=2).info
    assert lowres.context_shape == (1, 4, 4)


def test_pictures_name_their_classes_by_sub_folder(roots):
    info = get("images", "train", roots["images"]).info
    assert info.class_names == ("blue", "red") and info.event_shape == (3, 32, 32)


def test_a_wrong_option_value_is_refused_where_it_enters():
    with pytest.raises(ValueError, match="binarize must be one of"):
        DataConfig("digits", binarize="sometimes")
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        DataConfig("moons", num_samples=0)
    with pytest.raises(ValueError, match="block_size must be an int >= 2"):
        get("text", "train", str(Path(__file__)), block_size=1)


def test_a_run_whose_config_json_has_the_old_data_section_still_evaluates(tmp_path, capsys):
    from dgm.cli import main
    from dgm.train import train
    from helpers import quiet_config

    run = tmp_path / "run"
    data = DataConfig("moons", num_samples=300, data_seed=2)
    train("gmm", data, run, quiet_config(steps=2), progress=False)
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"] == {
        "name": "moons",
        "root": None,
        "options": data.options,
        "train_fraction": None,
    }
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "test", "--json"]) == 0
    new = json.loads(capsys.readouterr().out)
    old = {k: None for k in OLD_DATA_SECTION} | {"name": "moons", "num_samples": 300}
    saved["data"] = old | {"data_seed": 2}  # as the code before per-dataset options wrote it
    (run / "config.json").write_text(json.dumps(saved))
    assert main(["eval", str(run), "--split", "test", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == new and new["n"] == 300  # the same 300 test points, seeded alike


def test_a_train_fraction_is_a_subset_drawn_by_the_data_seed():
    """train_fraction keeps round(f · N) examples of the train split, chosen by a
    permutation seeded by the data seed (every sweep test used seed 0), in their order."""
    for seed in (0, 3):
        full = get("digits", "train", seed=seed)
        sub = DataConfig("digits", train_fraction=0.2, seed=seed).load("train")
        order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed))
        keep = order[: round(0.2 * len(full))].sort().values
        assert torch.equal(sub.x, full.x[keep]) and torch.equal(sub.y, full.y[keep]), seed
