"""Grey-scale image datasets: Fashion-MNIST, MNIST (28x28) and sklearn's digits (8x8).

Every loader returns x of shape (N, 1, H, W) and labels y in 0..9. Options:

- ``scale``: ``"unit"`` gives float32 pixel / max level in [0, 1]; ``"byte"`` gives the
  integers 0..255 (uint8, batches come out as int64), the scale on which discrete-data
  likelihoods are reported.
- ``binarize``: ``"none"``; ``"static"`` draws binary pixels Bernoulli(x) once, seeded by
  ``seed`` and the split; ``"dynamic"`` stores the probabilities and draws afresh on every
  access (``TensorData.dynamic_binarize``). Published NLLs differ by about 2 nats between
  the two. Binarization needs ``scale="unit"``.
- ``condition``: ``"none"``, or ``"lowres"`` to carry a context c beside x: the grey image
  average-pooled by ``lowres_factor`` (28x28 -> 7x7 at the default 4), floats in [0, 1].
  A model conditioned on it learns p(x | c), super-resolution.
- ``valid_fraction``: share of the official train set held out, at random (seeded by
  ``seed``), as the "valid" split; "train" is the rest. 1/12 gives 55000 / 5000 for MNIST.

Nothing is downloaded implicitly: Fashion-MNIST comes from the Debian package
``dataset-fashion-mnist``; MNIST from ``download_mnist(root)``, called once by hand.

Example:
    >>> from dgm.data import get
    >>> get("digits", "test").x.shape
    torch.Size([300, 1, 8, 8])
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import shutil
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import torch

from dgm.data.dataset import SPLITS, TensorData, register_dataset
from dgm.data.idx import read_idx
from dgm.data.options import VALID_FRACTION, ImageOptions, PictureOptions
from dgm.data.system import FASHION_MNIST_DIR, hidden_note, system_path
from dgm.io import atomic_write, file_digest

FASHION_CLASSES = (  # Fashion-MNIST's labels 0..9 (Xiao et al. 2017, arXiv:1708.07747)
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGIT_CLASSES = tuple(str(k) for k in range(10))  # MNIST's and sklearn digits' labels 0..9

IDX_FILES = {  # official split -> (images, labels), each stored raw or as .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_MD5 = {  # the published checksums, as torchvision checks them
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


@register_dataset(
    "fashion_mnist", "Fashion-MNIST: 28x28 grey clothing images, 10 classes", ImageOptions
)
def load_fashion_mnist(split: str, root: str | None, options: ImageOptions) -> TensorData:
    """Fashion-MNIST from ``root``, else ``$DGM_DATA/fashion-mnist``, ``$DGM_DATA`` or the
    Debian package folder /usr/share/datasets/fashion-mnist (``apt-get install
    dataset-fashion-mnist``; ``DGM_SYSTEM_DATA=off`` hides it, see ``dgm.data.system``).
    Xiao et al. 2017, arXiv:1708.07747."""
    if root is not None:
        folders = [Path(root)]
    else:
        debian = system_path(FASHION_MNIST_DIR)
        folders = [*_env_folders("fashion-mnist"), *([debian] if debian else [])]
    fix = "`apt-get install dataset-fashion-mnist`, or point --data-root (Python: root=) "
    fix += f"at the folder with the files{hidden_note(FASHION_MNIST_DIR)}"
    folder = _find_idx_folder("fashion_mnist", folders, fix)
    return _idx_split("fashion_mnist", folder, split, options, FASHION_CLASSES)


@register_dataset("mnist", "MNIST: 28x28 grey handwritten digits, 10 classes", ImageOptions)
def load_mnist(split: str, root: str | None, options: ImageOptions) -> TensorData:
    """MNIST from ``root``, else ``$DGM_DATA/mnist`` or ``$DGM_DATA``; never downloads
    (``download_mnist(root)`` does, once). LeCun et al. 1998, doi:10.1109/5.726791."""
    folders = [Path(root)] if root is not None else _env_folders("mnist")
    fix = "point --data-root (Python: root=) at the folder with the files, or download "
    fix += "them once with "
    fix += "dgm.data.images.download_mnist(root)"
    folder = _find_idx_folder("mnist", folders, fix)
    return _idx_split("mnist", folder, split, options, DIGIT_CLASSES)


@register_dataset(
    "digits", "sklearn digits: 1797 8x8 grey handwritten digits, 10 classes", ImageOptions
)
def load_digits(split: str, root: str | None, options: ImageOptions) -> TensorData:
    """sklearn's 8x8 digits (levels 0..16; ``root`` is unused). There is no official test
    split: a fixed permutation (seed 0, whatever ``seed``) holds out 300 test images, and
    "train" / "valid" divide the other 1497 by ``valid_fraction``, seeded by ``seed``."""
    pixels, labels = digits_arrays()
    order = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(0)).numpy()
    test, rest = np.sort(order[:300]), np.sort(order[300:])
    if split == "test":
        index = test
    else:
        index = rest[train_valid_index(len(rest), split, options.valid_fraction, options.seed)]
    pixels, labels = pixels[index], labels[index]
    return image_data("digits", pixels, labels, 16, split, options, DIGIT_CLASSES)


def download_mnist(root: str | os.PathLike[str]) -> Path:
    """Download the four MNIST .gz files into ``root`` (created if needed); returns ``root``.

    Each file goes to a temporary name, is checked against its published MD5, then renamed;
    a mismatch raises ``ValueError`` and leaves nothing behind. Files already present with
    the right checksum are kept without downloading.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, md5 in MNIST_MD5.items():
        dest = root / name
        if dest.is_file() and file_digest(dest, "md5") == md5:
            continue
        atomic_write(dest, lambda tmp, name=name, md5=md5: _fetch_verified(name, md5, tmp))
    return root


def _fetch_verified(name: str, md5: str, tmp: Path) -> None:
    _fetch(MNIST_URL + name, tmp)
    got = file_digest(tmp, "md5")
    if got != md5:
        raise ValueError(
            f"{MNIST_URL + name}: MD5 {got} does not match the published {md5}; "
            f"nothing was saved. Retry, or fetch the file by hand into {tmp.parent}"
        )


def _fetch(url: str, dest: Path) -> None:
    """Copy the bytes at ``url`` into file ``dest`` (tests replace this)."""
    with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as f:
        shutil.copyfileobj(response, f)


def _env_folders(subfolder: str) -> list[Path]:
    data = os.environ.get("DGM_DATA")
    return [Path(data) / subfolder, Path(data)] if data else []


def _find_idx_folder(name: str, folders: list[Path], fix: str) -> Path:
    """The first of ``folders`` holding all four IDX files (raw or .gz)."""
    tried = []
    for folder in folders:
        missing = [f for pair in IDX_FILES.values() for f in pair if _idx_path(folder, f) is None]
        if not missing:
            return folder
        why = "no such folder" if not folder.is_dir() else f"missing {', '.join(missing)}"
        tried.append(f"{folder} ({why})")
    searched = "; ".join(tried) or "nowhere: no root given and $DGM_DATA is not set"
    raise FileNotFoundError(f"{name} IDX files not found; searched {searched}. To fix: {fix}")


def _idx_path(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_split(
    name: str,
    folder: Path,
    split: str,
    options: ImageOptions,
    class_names: tuple[str, ...],
) -> TensorData:
    official = "test" if split == "test" else "train"
    images, labels = (_read_cached(_idx_path(folder, f)) for f in IDX_FILES[official])
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(
            f"{folder}: {official} images have shape {images.shape} and labels {labels.shape}; "
            "expected (N, H, W) images and N labels"
        )
    if split == "test":
        index = np.arange(len(images))
    else:
        index = train_valid_index(len(images), split, options.valid_fraction, options.seed)
    return image_data(name, images[index], labels[index], 255, split, options, class_names)


def _read_cached(path: Path) -> np.ndarray:
    stat = path.stat()  # the key includes size and mtime, so a rewritten file is read again
    return _read_idx_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, size: int, mtime_ns: int) -> np.ndarray:
    array = read_idx(path)
    array.flags.writeable = False  # shared between calls
    return array


@functools.lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits: read-only pixels (1797, 8, 8) uint8 in 0..16 and labels
    (1797,) int64. Read from the CSV file scikit-learn ships (64 pixels, then the label, per
    row) without importing scikit-learn, which costs about 1.5 CPU-s in every process that
    trains on digits; through ``sklearn.datasets.load_digits`` if that file has moved."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without running it
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec else None
    if csv is not None and csv.is_file():
        with gzip.open(csv, "rt") as f:
            table = np.loadtxt(f, delimiter=",")  # (1797, 65)
        images, labels = table[:, :-1].reshape(-1, 8, 8), table[:, -1]  # (N, 8, 8), (N,)
    else:
        from sklearn.datasets import load_digits as sklearn_digits

        bunch = sklearn_digits()
        images, labels = bunch.images, bunch.target
    images, labels = images.astype(np.uint8), labels.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def train_valid_index(n: int, split: str, valid_fraction: float, seed: int) -> np.ndarray:
    """Sorted indices into the official train set of ``n`` for "train" or "valid"."""
    n_valid = round(valid_fraction * n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    index = np.sort(order[:n_valid] if split == "valid" else order[n_valid:])
    if len(index) == 0:
        raise ValueError(
            f"split {split!r} is empty with valid_fraction={valid_fraction} of {n} images; "
            f"use a valid_fraction in (0, 1) such as the default {VALID_FRACTION:.4g}"
        )
    return index


def image_data(
    name: str,
    pixels: np.ndarray,
    labels: np.ndarray,
    max_level: int,
    split: str,
    options: ImageOptions | PictureOptions,
    class_names: tuple[str, ...] = (),
    num_classes: int = 10,
) -> TensorData:
    """x (N, C, H, W) on the requested scale (float32 in [0, 1], or uint8 0..255),
    binarized as asked; with ``lowres`` > 0 the context is the grey image average-pooled
    by that factor (before binarization). ``class_names`` name the labels 0..K-1."""
    binarize, scale, seed = options.binarize, options.scale, options.seed
    lowres = options.lowres if isinstance(options, ImageOptions) else 0
    grey = torch.from_numpy(np.array(pixels, dtype=np.float32)) / max_level
    if grey.dim() == 3:
        grey = grey[:, None]  # (N, 1, H, W); colour images come as (N, C, H, W)
    context = None
    if lowres:
        h, w = grey.shape[-2:]
        if h % lowres or w % lowres:
            raise ValueError(
                f"lowres_factor {lowres} does not divide the {h}x{w} images of {name!r}: "
                f"choose a divisor of {h} (e.g. {2 if h % 4 else 4})"
            )
        context = torch.nn.functional.avg_pool2d(grey, lowres)  # (N, 1, H / f, W / f)
    if scale == "byte":
        x = torch.round(grey * 255).to(torch.uint8)
        value_range = (0.0, 255.0)
    else:
        x, value_range = grey, (0.0, 1.0)
    if binarize == "static":
        generator = torch.Generator().manual_seed(split_seed(name, split, seed))
        x = torch.bernoulli(x, generator=generator)
    y = torch.from_numpy(np.array(labels, dtype=np.int64))
    return TensorData(
        x,
        y,
        name=name,
        num_classes=num_classes,
        dynamic_binarize=binarize == "dynamic",
        context=context,
        value_range=value_range,
        class_names=class_names,
    )


def split_seed(name: str, split: str, seed: int) -> int:
    """A seed for ``split`` of ``name``, stable across processes, distinct per split."""
    words = [zlib.crc32(name.encode()), SPLITS.index(split), seed]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> 1)
