"""IDX files, the format of MNIST and Fashion-MNIST: read and write, raw or gzip-compressed.

An IDX file is a 4-byte magic ``00 00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimension sizes, then the array itself, big-endian, in C order.
See http://yann.lecun.com/exdb/mnist/ (bottom of the page).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from dgm.io import atomic_write

# dtype code (third magic byte) -> big-endian numpy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """The array stored in IDX file ``path``, native byte order, shape from the header.

    The file may be gzip-compressed; that is detected from its first bytes, whatever its
    name. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` (naming the
    file) for a bad magic number, corrupt gzip data, or a payload whose size does not
    match the header's dimensions.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path} does not exist")
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt gzip data ({e}); fetch the file again") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        codes = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(
            f"{path} is not an IDX file (magic {raw[:4].hex(' ') or '<empty>'}; expected "
            f"00 00 <dtype code: one of {codes}> <ndim>)"
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise ValueError(
            f"{path}: truncated IDX header: {ndim} dimensions need {start} bytes, "
            f"the file has {len(raw)}"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:start])
    expected, actual = math.prod(dims) * dtype.itemsize, len(raw) - start
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX payload {what}: dimensions {dims} of {dtype.name} need "
            f"{expected} bytes, the file has {actual}"
        )
    array = np.frombuffer(raw, dtype=dtype, count=math.prod(dims), offset=start)
    return array.reshape(dims).astype(dtype.newbyteorder("="))  # a writable native copy


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` as IDX (gzip-compressed when the name ends in ``.gz``,
    with a zero time stamp: the same array gives the same bytes whenever it is written).

    The dtype must be one IDX stores: uint8, int8, int16, int32, float32 or float64.
    The write is atomic (a temporary file renamed into place). Returns the path.
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        names = ", ".join(dt.name for dt in codes)
        raise ValueError(f"IDX cannot store dtype {array.dtype}; convert it to one of {names}")
    if array.ndim > 255:
        raise ValueError(f"IDX stores at most 255 dimensions, the array has {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return path
