"""The user's own data: arrays (``tensors``), a folder of pictures (``images``) and a
table (``csv``), each read from ``--data-root``.

Files that carry no split of their own are split reproducibly: a permutation seeded by
``seed`` holds out ``test_fraction`` as "test", then ``valid_fraction`` of the rest as
"valid"; "train" is what remains. The same seed always gives the same three splits.

Example:
    >>> import numpy as np, tempfile, os
    >>> from dgm.data import get
    >>> path = os.path.join(tempfile.mkdtemp(), "points.npy")
    >>> np.save(path, np.random.default_rng(0).normal(size=(100, 3)).astype("float32"))
    >>> [len(get("tensors", s, path)) for s in ("train", "valid", "test")]
    [81, 9, 10]
"""

from __future__ import annotations

import csv
import math
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dgm.data.dataset import TensorData, register_dataset
from dgm.data.images import image_data
from dgm.data.options import CsvOptions, PictureOptions, SplitOptions

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def split_index(
    n: int, split: str, valid_fraction: float, test_fraction: float, seed: int
) -> np.ndarray:
    """Sorted indices of ``split`` among n examples (seeded, disjoint, covering all n)."""
    for name, f in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ValueError(f"{name} must be in [0, 1), got {f}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    n_test = round(test_fraction * n)
    n_valid = round(valid_fraction * (n - n_test))
    parts = {
        "test": order[:n_test],
        "valid": order[n_test : n_test + n_valid],
        "train": order[n_test + n_valid :],
    }
    index = np.sort(parts[split])
    if len(index) == 0:
        raise ValueError(
            f"split {split!r} is empty: {n} examples with valid_fraction={valid_fraction}, "
            f"test_fraction={test_fraction}; use more data or other fractions"
        )
    return index


def _root_file(name: str, root: str | None, suffixes: tuple[str, ...]) -> Path:
    if root is None:
        raise FileNotFoundError(
            f"dataset {name!r} reads your file: pass --data-root FILE ({', '.join(suffixes)})"
        )
    path = Path(root).expanduser()
    if not path.is_file():
        why = "is a folder" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"--data-root {path} {why}: expected a {'/'.join(suffixes)} file")
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"--data-root {path}: dataset {name!r} reads {', '.join(suffixes)} files")
    return path


def _array(x: object, path: Path) -> Tensor:
    """x as a tensor of real or integer values with at least two dimensions, (N, ...)."""
    if isinstance(x, Tensor):
        x = x.detach().cpu()
    try:
        array = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: x is not an array ({e})") from None
    if array.dtype.kind == "c":
        raise ValueError(
            f"{path}: x is complex ({array.dtype}); dgm models real or integer values: save "
            "the real and imaginary parts as two columns, np.stack([x.real, x.imag], -1)"
        )
    if array.dtype.kind not in "biuf":
        raise ValueError(
            f"{path}: x has dtype {array.dtype}; save numbers (float, integer or bool)"
        )
    if array.ndim == 1 and len(array) > 0:
        raise ValueError(
            f"{path}: x has shape {array.shape}, one axis; dgm reads axis 0 as the examples, "
            f"so save N examples of one value as shape ({len(array)}, 1): x.reshape(-1, 1)"
        )
    if array.ndim < 2 or len(array) == 0:
        raise ValueError(f"{path}: x must have shape (N, ...) with N > 0, got {array.shape}")
    return torch.as_tensor(array)


def _labels(y: Tensor | np.ndarray | None, n: int, where: str) -> tuple[Tensor | None, int]:
    """Labels as int64 with their number of classes (0 without labels)."""
    if y is None:
        return None, 0
    y = torch.as_tensor(np.asarray(y))
    if y.shape != (n,) or (y.is_floating_point() and not bool((y == y.round()).all())):
        raise ValueError(f"{where}: labels must be {n} integers, got shape {tuple(y.shape)}")
    y = y.long()
    if bool((y < 0).any()):
        raise ValueError(f"{where}: labels must be >= 0")
    return y, int(y.max()) + 1 if n else 0


@register_dataset(
    "tensors", "your arrays: --data-root FILE.npy/.npz/.pt (x, optional labels y)", SplitOptions
)
def load_tensors(split: str, root: str | None, options: SplitOptions) -> TensorData:
    """x (N, ...) from ``root``: a .npy array, a .npz with arrays ``x`` and optionally ``y``,
    or a .pt file holding a tensor or a dict {"x": ..., "y": ...} (read with
    ``weights_only=True``: no code runs). Float x stay float32; integer x stay integers
    (tokens, categories, bytes). NaN marks missing values for models that marginalise."""
    path = _root_file("tensors", root, (".npy", ".npz", ".pt"))
    try:
        if path.suffix == ".npy":
            x, y = np.load(path, allow_pickle=False), None
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                if "x" not in f:
                    raise ValueError(f"{path} has arrays {sorted(f)}; name the data 'x'")
                x, y = f["x"], (f["y"] if "y" in f else None)
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            x, y = (obj.get("x"), obj.get("y")) if isinstance(obj, dict) else (obj, None)
            if x is None:
                raise ValueError(f"{path} holds a dict without the key 'x'")
    except pickle.UnpicklingError:
        raise ValueError(
            f"{path} holds Python objects besides tensors, which dgm refuses to unpickle for "
            "safety (unpickling can run code): save plain tensors, "
            "torch.save({'x': x, 'y': y}, FILE), or arrays, np.save(FILE, x)"
        ) from None
    except (OSError, EOFError, RuntimeError, ValueError) as e:
        if "name the data" in str(e) or "without the key" in str(e):
            raise
        raise ValueError(f"{path} is not a readable {path.suffix} file ({e})") from None
    x = _array(x, path)
    if x.dtype == torch.bool:
        x = x.float()
    elif x.is_floating_point():
        x = x.float()
    labels, num_classes = _labels(y, len(x), str(path))
    index = torch.from_numpy(split_index(len(x), split, *_fractions(options)))
    value_range = (0.0, 255.0) if x.dtype == torch.uint8 else None
    return TensorData(
        x[index],
        None if labels is None else labels[index],
        name="tensors",
        num_classes=num_classes,
        value_range=value_range,
    )


@register_dataset(
    "images", "your pictures: --data-root FOLDER (PNG/JPEG, class = sub-folder)", PictureOptions
)
def load_images(split: str, root: str | None, options: PictureOptions) -> TensorData:
    """Pictures under ``root`` read with Pillow, resized to ``image_size`` x ``image_size``,
    grey (``channels=1``) or RGB (3); 0 picks grey when every picture is grey. Pictures in
    sub-folders get the sub-folder as their class (sorted names -> 0, 1, ...); pictures
    directly in ``root`` have none. ``binarize`` and ``scale`` work as for the image
    datasets; binarization needs grey pictures."""
    from PIL import Image, UnidentifiedImageError

    image_size, channels = options.image_size, options.channels
    if root is None:
        raise FileNotFoundError("dataset 'images' reads your pictures: pass --data-root FOLDER")
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"--data-root {folder} is not a folder of pictures")
    if not isinstance(image_size, int) or image_size < 2:
        raise ValueError(f"image_size must be an int >= 2, got {image_size!r}")
    if channels not in (0, 1, 3):
        raise ValueError(f"channels must be 1 (grey), 3 (RGB) or 0 (detect), got {channels!r}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder} holds no pictures ({', '.join(IMAGE_SUFFIXES)})")
    classes = sorted({p.parent.name for p in files if p.parent != folder})
    if classes and any(p.parent == folder for p in files):
        raise ValueError(
            f"{folder} mixes pictures with class sub-folders: move the loose pictures "
            "into a sub-folder, or remove the sub-folders"
        )
    pictures = []
    for p in files:
        try:
            with Image.open(p) as img:
                pictures.append(img.convert("RGB") if img.mode not in ("L", "RGB") else img.copy())
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{p} is not a readable picture ({e})") from None
    if channels == 0:
        channels = 1 if all(_is_grey(img) for img in pictures) else 3
    if options.binarize != "none" and channels != 1:
        raise ValueError("binarize needs grey pictures: set --channels 1")
    mode = "L" if channels == 1 else "RGB"
    size = (image_size, image_size)
    arrays = [np.asarray(img.convert(mode).resize(size, Image.BILINEAR)) for img in pictures]
    pixels = np.stack(arrays)  # (N, H, W) or (N, H, W, 3)
    if channels == 3:
        pixels = pixels.transpose(0, 3, 1, 2)  # (N, 3, H, W)
    labels = np.array([classes.index(p.parent.name) if classes else 0 for p in files])
    index = split_index(len(files), split, *_fractions(options))
    return image_data(
        "images",
        pixels[index],
        labels[index],
        255,
        split,
        options,
        tuple(classes),
        num_classes=len(classes),
    )


def _fractions(options: SplitOptions | PictureOptions) -> tuple[float, float, int]:
    """(valid_fraction, test_fraction, seed): the arguments of ``split_index``."""
    return options.valid_fraction, options.test_fraction, options.seed


def _is_grey(img: object) -> bool:
    if img.mode == "L":  # type: ignore[attr-defined]
        return True
    a = np.asarray(img, dtype=np.int16)  # (H, W, 3)
    return bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())


@register_dataset(
    "csv", "your table: --data-root FILE.csv (numeric or categorical columns)", CsvOptions
)
def load_csv(split: str, root: str | None, options: CsvOptions) -> TensorData:
    """A table with a header row, comma-separated (tab-separated for .tsv).

    Numeric columns are floats (an empty cell, NA, NaN, null or ? is NaN: missing). A
    column is categorical when none of its cells is a number: its values are coded 0..K-1
    in sorted order. A column of numbers with a word in it is refused, naming the first
    such cell (a typo would otherwise turn the whole column into category codes): fix the
    cell, or empty it to mark it missing; ``mixed="categories"`` reads such a column as
    categories instead (``csv_categorical``, where every value is a category name). An
    all-categorical table gives integer x (for categorical models); otherwise x is float32
    with the codes as numbers. ``label_column`` names a column to use as the class label
    instead of data (numbers keep their values, names are coded in sorted order)."""
    label_column, mixed = options.label_column, options.mixed
    path = _root_file("csv", root, (".csv", ".tsv", ".txt"))
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path} is not a readable CSV file ({e})") from None
    lines = [i + 1 for i, r in enumerate(rows) if any(cell.strip() for cell in r)]
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise ValueError(f"{path} needs a header row and at least one data row")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    bad = [lines[i + 1] for i, r in enumerate(body) if len(r) != len(header)]
    if bad:
        raise ValueError(
            f"{path}: row(s) {bad[:5]} have another number of cells than the header's {len(header)}"
        )
    columns = list(zip(*body, strict=True))
    labels = None
    if label_column is not None:
        if label_column not in header:
            raise ValueError(f"{path} has no column {label_column!r}; columns: {header}")
        i = header.index(label_column)
        values = [c.strip() for c in columns[i]]
        numbers = _numbers(values)
        if numbers is not None and np.isfinite(numbers).all() and (numbers % 1 == 0).all():
            labels = numbers.astype(np.int64)  # numeric labels keep their values
        else:
            labels = _codes(values)[0]  # names: sorted, coded 0..K-1
        header, columns = header[:i] + header[i + 1 :], columns[:i] + columns[i + 1 :]
    if not columns:
        raise ValueError(f"{path} has no data columns besides the label")
    encoded, categorical = [], []
    for name, values in zip(header, columns, strict=True):
        values = [v.strip() for v in values]
        numbers = _numbers(values)
        if numbers is None and mixed == "refuse":
            _refuse_mixed(path, name, values, lines[1:])
        if numbers is None:
            codes, _ = _codes(values)
            encoded.append(codes.astype(np.float64))
            categorical.append(True)
        else:
            encoded.append(numbers)
            categorical.append(False)
    table = np.stack(encoded, axis=1)  # (N, D)
    x = torch.from_numpy(table.astype(np.int64 if all(categorical) else np.float32))
    y, num_classes = _labels(labels, len(x), str(path))
    index = torch.from_numpy(split_index(len(x), split, *_fractions(options)))
    return TensorData(
        x[index], None if y is None else y[index], name="csv", num_classes=num_classes
    )


def _refuse_mixed(path: Path, column: str, values: list[str], lines: list[int]) -> None:
    """Refuse a column whose cells are numbers but for a few words, naming the first word;
    a column without any number is categorical and passes."""
    words = [i for i, v in enumerate(values) if not _missing(v) and _number(v) is None]
    if len(words) == sum(not _missing(v) for v in values):
        return  # no cell is a number: a categorical column
    i = words[0]
    more = f" (and {len(words) - 1} more)" if len(words) > 1 else ""
    raise ValueError(
        f"{path} line {lines[i]}, column {column!r}: {values[i]!r} is not a number in a "
        f"column of numbers{more}; fix the cell, or leave it empty to mark it missing"
    )


def _missing(value: str) -> bool:
    return value == "" or value.lower() in ("na", "nan", "null", "?")


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _numbers(values: list[str]) -> np.ndarray | None:
    """The column as floats (empty cells and NA-like words -> NaN), or None if it is not
    numeric."""
    out = np.empty(len(values))
    for i, v in enumerate(values):
        number = math.nan if _missing(v) else _number(v)
        if number is None:
            return None
        out[i] = number
    return out


def _codes(values: list[str]) -> tuple[np.ndarray, list[str]]:
    levels = sorted(set(values))
    lookup = {v: i for i, v in enumerate(levels)}
    return np.array([lookup[v] for v in values], dtype=np.int64), levels


__all__ = ["load_csv", "load_images", "load_tensors", "split_index"]
