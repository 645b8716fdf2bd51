"""The user's own data: arrays, picture folders and CSV tables, split reproducibly, with
clear errors for files that are missing or wrong. Every test writes its own small files."""

import numpy as np
import pytest
import torch
from PIL import Image

from dgm.cli import main
from dgm.data import get
from dgm.data.files import split_index


def test_splits_are_disjoint_complete_and_seeded():
    parts = {s: split_index(100, s, 0.1, 0.2, seed=3) for s in ("train", "valid", "test")}
    assert [len(p) for p in parts.values()] == [72, 8, 20]
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(100))
    assert np.array_equal(parts["test"], split_index(100, "test", 0.1, 0.2, seed=3))
    assert not np.array_equal(parts["test"], split_index(100, "test", 0.1, 0.2, seed=4))
    with pytest.raises(ValueError, match="split 'valid' is empty"):
        split_index(5, "valid", 0.0, 0.2, seed=0)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt"])
def test_tensors_from_each_file_kind(tmp_path, suffix):
    x = np.random.default_rng(0).normal(size=(50, 2, 3)).astype(np.float64)
    y = np.arange(50) % 4
    path = tmp_path / f"data{suffix}"
    if suffix == ".npy":
        np.save(path, x)
    elif suffix == ".npz":
        np.savez(path, x=x, y=y)
    else:
        torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, path)
    splits = [get("tensors", s, str(path)) for s in ("train", "valid", "test")]
    assert sum(len(d) for d in splits) == 50 and splits[0].x.dtype == torch.float32
    assert splits[0].event_shape == (2, 3)
    whole = torch.cat([d.x for d in splits]).double().sort(0).values
    torch.testing.assert_close(whole, torch.from_numpy(x).sort(0).values, atol=1e-6, rtol=0)
    if suffix != ".npy":
        assert splits[0].num_classes == 4 and (splits[0].y < 4).all()


def test_integer_tensors_stay_integers(tmp_path):
    path = tmp_path / "tokens.npy"
    np.save(path, np.random.default_rng(0).integers(0, 5, size=(40, 6)))
    data = get("tensors", "train", str(path))
    assert not data.x.is_floating_point() and data.batch(torch.arange(2)).x.dtype == torch.long


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_bytes(b"not numpy"), "not a readable .npy file"),
        (lambda p: np.savez(p.with_suffix(".npz"), z=np.zeros((3, 2))), "name the data 'x'"),
    ],
)
def test_bad_tensor_files_are_clear_errors(tmp_path, make, message):
    path = tmp_path / "data.npy"
    make(path)
    if not path.exists() and (tmp_path / "data.npz").exists():
        path = tmp_path / "data.npz"
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        get("tensors", "train", str(path))
    with pytest.raises(FileNotFoundError, match="--data-root FILE"):
        get("tensors", "train", None)


def write_pictures(root, mode="RGB", n=10, size=(12, 10)):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                root / cls / f"{i}.{'png' if i % 2 else 'jpg'}"
            )


def test_picture_folders_give_classes_channels_and_sizes(tmp_path):
    write_pictures(tmp_path / "rgb")
    data = get("images", "train", str(tmp_path / "rgb"), image_size=8)
    assert data.event_shape == (3, 8, 8) and data.num_classes == 2
    assert set(data.y.tolist()) == {0, 1} and 0 <= data.x.min() and data.x.max() <= 1
    write_pictures(tmp_path / "grey", mode="L")
    grey = get("images", "test", str(tmp_path / "grey"), image_size=6, scale="byte")
    assert grey.event_shape == (1, 6, 6) and grey.x.dtype == torch.uint8
    binary = get("images", "train", str(tmp_path / "grey"), binarize="static")
    assert set(binary.x.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="binarize needs grey pictures"):
        get("images", "train", str(tmp_path / "rgb"), binarize="static")
    (tmp_path / "rgb" / "loose.png").write_bytes((tmp_path / "rgb" / "cats" / "1.png").read_bytes())
    with pytest.raises(ValueError, match="mixes pictures with class sub-folders"):
        get("images", "train", str(tmp_path / "rgb"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no pictures"):
        get("images", "train", str(tmp_path / "empty"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"no picture")
    with pytest.raises(ValueError, match="not a readable picture"):
        get("images", "train", str(tmp_path / "broken"))


def test_csv_numeric_categorical_missing_and_labels(tmp_path):
    path = tmp_path / "t.csv"
    rows = [
        f"{i * 0.5},{'' if i % 7 == 0 else i},{['red', 'blue'][i % 2]},{i % 3}" for i in range(40)
    ]
    path.write_text("a,b,colour,label\n" + "\n".join(rows) + "\n")
    parts = [get("csv", s, str(path), label_column="label") for s in ("train", "valid", "test")]
    x = torch.cat([p.x for p in parts])
    assert x.shape == (40, 3) and x.dtype == torch.float32 and parts[0].num_classes == 3
    assert torch.isnan(x[:, 1]).sum() == 6  # the empty cells are missing values
    assert set(x[:, 2].tolist()) == {0.0, 1.0}  # blue -> 0, red -> 1
    tabs = tmp_path / "t.tsv"  # the same table, tab-separated: the same examples
    tabs.write_text(path.read_text().replace(",", "\t"))
    again = torch.cat(
        [get("csv", s, str(tabs), label_column="label").x for s in ("train", "valid", "test")]
    )
    assert torch.equal(again.nan_to_num(-1), x.nan_to_num(-1))
    cats = tmp_path / "c.csv"
    cats.write_text("x,y\n" + "\n".join(f"{'ab'[i % 2]},{'pqr'[i % 3]}" for i in range(30)))
    data = get("csv", "train", str(cats))
    assert data.x.dtype == torch.int64 and data.x.max() <= 2  # all categorical: integer codes
    with pytest.raises(ValueError, match="no column 'nope'"):
        get("csv", "train", str(path), label_column="nope")
    ragged = tmp_path / "r.csv"
    ragged.write_text("a,b\n1,2\n3\n4,5\n")
    with pytest.raises(ValueError, match=r"row\(s\) \[3\]"):
        get("csv", "train", str(ragged))


def test_rgb_pictures_train_evaluate_and_draw_through_the_cli(tmp_path, capsys):
    write_pictures(tmp_path / "pics", n=20)
    run = tmp_path / "run"
    argv = ["train", "vae", "--data", "images", "--data-root", str(tmp_path / "pics")]
    argv += ["--image-size", "8", "--decoder", "gaussian", "--decoder-std", "0.2"]
    argv += ["--steps", "20", "--batch-size", "8", "--latent-dim", "2", "--hidden-sizes", "16"]
    argv += ["--eval-every", "10", "--sample-every", "20", "--device", "cpu", "--out", str(run)]
    assert main(argv) == 0
    assert (run / "samples" / "step_0000020.png").is_file()
    assert main(["eval", str(run), "--json"]) == 0
    assert '"nll"' in capsys.readouterr().out
    out = tmp_path / "s.png"
    assert main(["sample", str(run), "-n", "4", "--out", str(out)]) == 0
    assert Image.open(out).mode == "RGB"


def test_an_rgb_picture_at_its_own_size_is_its_pixels_channel_first(tmp_path):
    """(H, W, RGB) pixels become x (3, H, W) unchanged on --scale byte: row i, column j,
    channel k of the picture is x[k, i, j] (a transposed picture would swap rows and
    columns); the bars below are vertical, so the left column differs from the top row."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    pixels[:, 0] = (255, 0, 0)  # a red left column, a black right one
    pixels[:, -1] = 0
    (tmp_path / "pics").mkdir()
    for i in range(10):
        Image.fromarray(pixels).save(tmp_path / "pics" / f"{i}.png")
    x = get("images", "train", str(tmp_path / "pics"), image_size=4, scale="byte").x
    assert torch.equal(x[0], torch.from_numpy(pixels).permute(2, 0, 1))
