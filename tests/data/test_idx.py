"""IDX reading and writing: round trips, byte layout, and every kind of damaged file."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest

from dgm.data.idx import read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
SHAPES = [(), (7,), (3, 5), (2, 3, 4), (2, 0, 3)]


def _array(dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)  # extremes catch byte-order and sign mistakes
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype) * 1e3


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip(tmp_path, dtype, shape, suffix):
    a = _array(dtype, shape)
    path = write_idx(tmp_path / f"a-idx{suffix}", a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == shape
    np.testing.assert_array_equal(a, b)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


def test_a_gzipped_file_is_the_same_bytes_whenever_it_is_written(tmp_path, monkeypatch):
    import time

    a = _array(np.uint8, (3, 4))
    monkeypatch.setattr(time, "time", lambda: 1e9)
    first = write_idx(tmp_path / "a.gz", a).read_bytes()
    monkeypatch.setattr(time, "time", lambda: 2e9)
    assert write_idx(tmp_path / "b.gz", a).read_bytes() == first
    assert first[4:8] == bytes(4)  # gzip's MTIME field


def test_byte_layout_is_big_endian(tmp_path):
    path = write_idx(tmp_path / "a", np.array([[1, 2, 3]], dtype=np.int32))
    assert path.read_bytes() == bytes.fromhex(
        "0000 0c 02  00000001 00000003  00000001 00000002 00000003".replace(" ", "")
    )
    hand_made = tmp_path / "b"
    hand_made.write_bytes(bytes.fromhex("00000b01 00000002 0102 fffe".replace(" ", "")))
    np.testing.assert_array_equal(read_idx(hand_made), np.array([0x0102, -2], dtype=np.int16))


def test_gzip_is_detected_by_content_not_name(tmp_path):
    a = _array(np.uint8, (4, 5))
    zipped = write_idx(tmp_path / "a.gz", a).rename(tmp_path / "a-idx3-ubyte")
    plain = write_idx(tmp_path / "b", a).rename(tmp_path / "b.gz")
    np.testing.assert_array_equal(read_idx(zipped), a)
    np.testing.assert_array_equal(read_idx(plain), a)


def test_missing_file(tmp_path):
    path = tmp_path / "nope-idx1-ubyte"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        read_idx(path)


@pytest.mark.parametrize(
    "head",
    [b"", b"\x00", b"\x01\x00\x08\x01", b"\x00\x01\x08\x01", b"\x00\x00\x07\x01", b"\x89PNG\r\n"],
)
def test_wrong_magic(tmp_path, head):
    path = tmp_path / "bad"
    path.write_bytes(head + bytes(16) if head else b"")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*not an IDX file \\(magic"):
        read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_payload(tmp_path, suffix):
    raw = write_idx(tmp_path / "full", np.zeros((3, 4, 5), np.uint8)).read_bytes()
    path = tmp_path / f"cut{suffix}"
    cut = raw[:-7]
    path.write_bytes(gzip.compress(cut) if suffix else cut)
    with pytest.raises(ValueError, match=re.escape(str(path))) as e:
        read_idx(path)
    assert "truncated" in str(e.value) and "60" in str(e.value) and "53" in str(e.value)


def test_truncated_header(tmp_path):
    path = tmp_path / "head"
    path.write_bytes(bytes([0, 0, 8, 3]) + bytes(6))  # 3 dims need 12 header bytes
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*header"):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "long", np.zeros((2, 3), np.float32))
    path.write_bytes(path.read_bytes() + b"\x00\x00")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*trailing.*24.*26"):
        read_idx(path)


@pytest.mark.parametrize("damage", ["garbage", "cut"])
def test_corrupt_gzip(tmp_path, damage):
    data = write_idx(tmp_path / "ok.gz", _array(np.uint8, (50, 50))).read_bytes()
    path = tmp_path / "broken.gz"
    path.write_bytes(data[:2] + b"\x08\x00garbage" * 20 if damage == "garbage" else data[:-40])
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*gzip"):
        read_idx(path)


def test_write_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match=r"int64.*uint8"):
        write_idx(tmp_path / "a", np.zeros(3, np.int64))
    assert list(tmp_path.iterdir()) == []
