"""Image datasets on small fake IDX files (plus the real Debian Fashion-MNIST where installed)."""

from __future__ import annotations

import gzip
import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from dgm.data import dataset_options, get
from dgm.data import images as images_module
from dgm.data.idx import write_idx
from system_files import FASHION_MNIST

N_TRAIN, N_TEST = 120, 30
STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def fake_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 images whose pixel (0, 0) is the image's index; labels i % 10."""
    pixels = np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    pixels[:, 0, 0] = np.arange(n)
    pixels[:, 0, 1], pixels[:, 0, 2] = 0, 255  # both extremes occur
    return pixels, (np.arange(n) % 10).astype(np.uint8)


def make_root(root: Path, gz: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write the four IDX files (train images raw, the rest as ``gz`` says) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    data = {"train": fake_split(N_TRAIN, 1), "test": fake_split(N_TEST, 2)}
    for split, (img_stem, lbl_stem) in STEMS.items():
        suffix = ".gz" if gz else ""
        write_idx(root / (img_stem if split == "train" else img_stem + suffix), data[split][0])
        write_idx(root / (lbl_stem + suffix), data[split][1])
    return data


@pytest.fixture
def root(tmp_path):
    make_root(tmp_path)
    return tmp_path


def ids(ds) -> list[int]:
    """The index each image carries in pixel (0, 0)."""
    return (ds.x[:, 0, 0, 0] * 255).round().long().tolist()


def test_options_are_exactly_these():
    for name in ("mnist", "fashion_mnist", "digits"):
        assert set(dataset_options(name)) == {
            "binarize",
            "scale",
            "valid_fraction",
            "seed",
            "condition",
            "lowres_factor",
        }


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_shapes_and_unit_scale(root, name):
    sizes = {"train": N_TRAIN - 10, "valid": 10, "test": N_TEST}  # round(120 / 12) = 10
    for split, n in sizes.items():
        ds = get(name, split, root=str(root))
        assert ds.x.shape == (n, 1, 28, 28) and ds.x.dtype == torch.float32
        assert ds.y.shape == (n,) and ds.y.dtype == torch.long
        assert ds.num_classes == 10 and not ds.dynamic_binarize and len(ds) == n
        assert ds.x.min() == 0 and ds.x.max() == 1
        torch.testing.assert_close(ds.y, torch.tensor(ids(ds)) % 10)
        names = ds.info.class_names  # the dataset's own label names
        assert names[0] == ("T-shirt/top" if name == "fashion_mnist" else "0") and len(names) == 10


def test_test_split_is_the_official_test_set(root):
    pixels, labels = fake_split(N_TEST, 2)
    unit, byte = get("mnist", "test", root=root), get("mnist", "test", root=root, scale="byte")
    assert torch.equal(byte.x[:, 0], torch.from_numpy(pixels))  # uint8, as stored
    torch.testing.assert_close(unit.x[:, 0], torch.from_numpy(pixels).float() / 255)
    torch.testing.assert_close(unit.y, torch.from_numpy(labels).long())


def test_train_and_valid_partition_the_official_train_set(root):
    train, valid = get("mnist", "train", root=root), get("mnist", "valid", root=root)
    assert not set(ids(train)) & set(ids(valid))
    assert sorted(ids(train) + ids(valid)) == list(range(N_TRAIN))
    full = get("mnist", "train", root=root, valid_fraction=0.0)
    assert ids(full) == list(range(N_TRAIN))
    with pytest.raises(ValueError, match="valid_fraction"):
        get("mnist", "valid", root=root, valid_fraction=0.0)
    assert len(get("mnist", "valid", root=root, valid_fraction=0.25)) == 30


def test_split_is_reproducible_and_seeded(root):
    first = ids(get("mnist", "valid", root=root, seed=3))
    assert ids(get("mnist", "valid", root=root, seed=3)) == first
    assert ids(get("mnist", "valid", root=root, seed=4)) != first


def test_static_binarization(root):
    unit = get("mnist", "train", root=root)
    a = get("mnist", "train", root=root, binarize="static")
    b = get("mnist", "train", root=root, binarize="static")
    c = get("mnist", "train", root=root, binarize="static", seed=1)
    assert set(a.x.unique().tolist()) == {0.0, 1.0} and not a.dynamic_binarize
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, c.x)
    assert abs(a.x.mean() - unit.x.mean()) < 0.01  # 86k pixels: the mean's std is ~0.002
    assert torch.all(a.x[unit.x == 0] == 0) and torch.all(a.x[unit.x == 1] == 1)


def test_static_binarization_draws_afresh_per_split(tmp_path):
    pixels, labels = fake_split(N_TRAIN, 1)
    for stem, array in zip(STEMS["train"] + STEMS["test"], [pixels, labels] * 2, strict=True):
        write_idx(tmp_path / stem, array)  # test set = train set: same probabilities
    train = get("mnist", "train", root=tmp_path, binarize="static", valid_fraction=0.0)
    test = get("mnist", "test", root=tmp_path, binarize="static", valid_fraction=0.0)
    assert torch.equal(
        get("mnist", "test", root=tmp_path).x,
        get("mnist", "train", root=tmp_path, valid_fraction=0.0).x,
    )
    assert not torch.equal(train.x, test.x)


def test_static_binarization_is_bernoulli_of_the_grey_levels():
    """On the digits test split, whose images do not depend on the seed, static binarization
    is Bernoulli(grey) per pixel: fixed by the seed, fresh for another seed, and over 200
    seeds the frequency of ones is the grey value, level by level (17 levels k / 16) and
    pixel by pixel. Thresholding at 0.5, Bernoulli(0.5), Bernoulli(x²), a seed ignored or
    probabilities shifted by one pixel each fail both frequency checks."""
    grey = get("digits", "test").x.flatten(1)  # (300, 64)
    seeds = 200
    draws = torch.stack(
        [get("digits", "test", binarize="static", seed=s).x.flatten(1) for s in range(seeds)]
    )  # (S, 300, 64)
    assert set(draws.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(get("digits", "test", binarize="static", seed=0).x.flatten(1), draws[0])
    assert (draws[0] != draws[1]).float().mean() > 0.05  # many pixels differ, not a few
    assert torch.all(draws[:, grey == 0] == 0) and torch.all(draws[:, grey == 1] == 1)
    ones = draws.sum(0).flatten()  # (300 * 64,): ones per pixel over the seeds
    level = (grey * 16).round().long().flatten()  # (300 * 64,): grey = level / 16
    n = torch.bincount(level, minlength=17) * seeds  # (17,): draws per level, >= 79000
    freq = torch.bincount(level, weights=ones, minlength=17) / n  # (17,)
    p = torch.arange(17, dtype=torch.float64) / 16
    se = (p * (1 - p) / n).sqrt()  # binomial standard error, <= 0.0018
    assert ((freq - p).abs() <= 4 * se).all(), (freq - p) / se
    # each of the ~8000 grey pixels: ((ones - S g)^2 / (S g (1 - g))) has mean 1 and
    # variance ~2; a map of probabilities shifted by a pixel, or drawn from another image,
    # puts the mean far above 1
    g = grey.flatten().double()
    inner = (g > 0) & (g < 1)
    z2 = (ones[inner] - seeds * g[inner]) ** 2 / (seeds * g[inner] * (1 - g[inner]))
    assert abs(z2.mean().item() - 1) < 5 * math.sqrt(2 / inner.sum().item()), z2.mean()


def test_dynamic_binarization(root):
    unit = get("mnist", "train", root=root)
    ds = get("mnist", "train", root=root, binarize="dynamic")
    assert ds.dynamic_binarize and torch.equal(ds.x, unit.x)
    index = torch.arange(len(ds))
    x1, y1, _ = ds.batch(index)
    x2, _, _ = ds.batch(index)
    assert set(x1.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(x1, x2)
    torch.testing.assert_close(y1, unit.y)
    draws = torch.stack([ds.batch(index)[0] for _ in range(20)])
    assert abs(draws.mean() - unit.x.mean()) < 0.005
    assert (draws.mean(0) - unit.x).abs().mean() < 0.1  # per pixel, 20 draws
    # a generator makes the draw repeatable, whatever torch's global generator did between
    again = []
    for seed in (0, 0, 1):
        torch.manual_seed(100 + len(again))  # the global generator moves on
        again.append(ds.batch(index, torch.Generator().manual_seed(seed))[0])
    assert torch.equal(again[0], again[1]) and not torch.equal(again[0], again[2])


def test_byte_scale(root):
    ds = get("mnist", "train", root=root, scale="byte")
    assert ds.x.dtype == torch.uint8 and ds.x.min() == 0 and ds.x.max() == 255
    assert ds.batch(torch.arange(3)).x.dtype == torch.long and ds.value_range == (0.0, 255.0)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"binarize": "yes"}, "binarize must be one of"),
        ({"scale": "bits"}, "scale must be one of"),
        ({"binarize": "static", "scale": "byte"}, "scale='unit'"),
        ({"binarize": "dynamic", "scale": "byte"}, "scale='unit'"),
        ({"valid_fraction": 1.0}, "valid_fraction"),
        ({"valid_fraction": -0.1}, "valid_fraction"),
        ({"seed": -1}, "seed"),
        ({"binarise": "static"}, "takes no option"),
    ],
)
def test_bad_options(root, options, match):
    for name in ("mnist", "digits"):
        with pytest.raises(ValueError, match=match):
            get(name, "train", root=root, **options)


def test_missing_files_name_the_folder_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("DGM_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path)) + ".*download_mnist"):
        get("mnist", "train", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no root given.*download_mnist"):
        get("mnist", "train")
    make_root(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="missing t10k-labels-idx1-ubyte"):
        get("mnist", "train", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        get("fashion_mnist", "train", root=tmp_path / "none")


def test_dgm_data_folders_are_searched(tmp_path, monkeypatch):
    make_root(tmp_path / "mnist")
    make_root(tmp_path / "fashion-mnist")
    monkeypatch.setenv("DGM_DATA", str(tmp_path))
    assert len(get("mnist", "test")) == N_TEST
    assert len(get("fashion_mnist", "test")) == N_TEST  # found before the Debian folder
    monkeypatch.setenv("DGM_DATA", str(tmp_path / "mnist"))
    assert len(get("mnist", "test")) == N_TEST  # files right in $DGM_DATA


def test_idx_arrays_are_read_once(root, monkeypatch):
    reads, read_idx = [], images_module.read_idx

    def counting_read(path):
        reads.append(Path(path).name)
        return read_idx(path)

    images_module._read_idx_cached.cache_clear()
    monkeypatch.setattr(images_module, "read_idx", counting_read)
    for split in ("train", "valid", "test", "train"):
        get("mnist", split, root=root)
    assert len(reads) == 4  # two files per official split, each read once
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.zeros(N_TEST, np.uint8))  # new contents
    assert get("mnist", "test", root=root).y.sum() == 0
    assert len(reads) == 5


def _gz_idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.tobytes())


def test_download_mnist_verifies_checksums(tmp_path, monkeypatch):
    assert (
        images_module.MNIST_MD5["t10k-labels-idx1-ubyte.gz"] == "ec29112dd5afa0611ce80d1b7f02629c"
    )
    data = {"train": fake_split(N_TRAIN, 1), "test": fake_split(N_TEST, 2)}
    payload = {}
    for split, stems in STEMS.items():
        for stem, array in zip(stems, data[split], strict=True):
            payload[stem + ".gz"] = _gz_idx(array)
            md5 = hashlib.md5(payload[stem + ".gz"]).hexdigest()
            monkeypatch.setitem(images_module.MNIST_MD5, stem + ".gz", md5)
    fetched = []

    def fake_fetch(url: str, dest: Path) -> None:
        assert url.startswith(images_module.MNIST_URL)
        name = url.rsplit("/", 1)[1]
        fetched.append(name)
        dest.write_bytes(payload[name])

    monkeypatch.setattr(images_module, "_fetch", fake_fetch)
    root = tmp_path / "mnist"
    assert images_module.download_mnist(root) == root
    assert sorted(p.name for p in root.iterdir()) == sorted(payload)
    assert len(fetched) == 4
    assert get("mnist", "test", root=root, scale="byte").x[:, 0, 0, 0].tolist() == list(range(30))

    images_module.download_mnist(root)
    assert len(fetched) == 4  # all present with the right checksum: nothing fetched

    (root / "train-labels-idx1-ubyte.gz").write_bytes(b"stale")
    images_module.download_mnist(root)
    assert fetched[4:] == ["train-labels-idx1-ubyte.gz"]  # a wrong file is fetched again

    bad_root = tmp_path / "bad"
    monkeypatch.setitem(images_module.MNIST_MD5, "t10k-images-idx3-ubyte.gz", "0" * 32)
    with pytest.raises(ValueError, match=re.escape("t10k-images-idx3-ubyte.gz: MD5")):
        images_module.download_mnist(bad_root)
    assert not (bad_root / "t10k-images-idx3-ubyte.gz").exists()
    assert not [p for p in bad_root.iterdir() if p.name.startswith(".")]  # no partial files


def test_digits_splits():
    splits = {s: get("digits", s) for s in ("train", "valid", "test")}
    assert [len(d) for d in splits.values()] == [1372, 125, 300]
    for ds in splits.values():
        assert ds.x.shape[1:] == (1, 8, 8) and ds.x.min() >= 0 and ds.x.max() <= 1
    rows = sorted(
        (tuple(ds.x[i].flatten().mul(16).round().int().tolist()), int(ds.y[i]))
        for ds in splits.values()
        for i in range(len(ds))
    )
    bunch = load_digits()
    full = sorted(
        (tuple(bunch.data[i].astype(int).tolist()), int(bunch.target[i])) for i in range(1797)
    )
    assert rows == full  # together the splits hold every image exactly once
    other = {s: get("digits", s, seed=7) for s in ("valid", "test")}
    assert torch.equal(other["test"].x, splits["test"].x)  # the test split ignores the seed
    assert not torch.equal(other["valid"].x, splits["valid"].x)
    byte = get("digits", "test", scale="byte")
    torch.testing.assert_close(byte.x.float(), torch.round(splits["test"].x * 255))


def test_digits_read_from_sklearns_file_equal_load_digits(monkeypatch):
    """The CSV read (no sklearn import) and the fallback through load_digits, used when
    the file is not where scikit-learn kept it, give the same read-only arrays."""
    read = images_module.digits_arrays.__wrapped__  # uncached
    direct = read()
    monkeypatch.setattr(images_module.importlib.util, "find_spec", lambda name: None)
    fallback = read()
    bunch = load_digits()
    for pixels, labels in (direct, fallback):
        assert pixels.dtype == np.uint8 and labels.dtype == np.int64
        assert np.array_equal(pixels, bunch.images) and np.array_equal(labels, bunch.target)
        assert not pixels.flags.writeable and not labels.flags.writeable


@FASHION_MNIST
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv("DGM_DATA", raising=False)
    sizes = {"train": 55000, "valid": 5000, "test": 10000}
    for split, n in sizes.items():
        ds = get("fashion_mnist", split)
        assert ds.x.shape == (n, 1, 28, 28)
        assert ds.y.min() == 0 and ds.y.max() == 9
        assert 0 <= ds.x.min() and ds.x.max() <= 1
    assert torch.equal(get("fashion_mnist", "test").y.bincount(), torch.full((10,), 1000))
