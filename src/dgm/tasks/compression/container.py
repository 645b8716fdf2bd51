"""The file format of ``dgm compress``: a small binary header, then the entropy-coded payload.

Layout (fixed-width integers little-endian; "varint" is LEB128: 7 bits a byte, 1 byte
below 128, 3 bytes below 2^21)::

    prefix   magic          4 bytes  b"DGMZ"
             version        u16      FORMAT_VERSION
             header length  u32      bytes of the header fields that follow
             header CRC-32  u32      of those header fields
    header   kind           u8       0 tensor, 1 text, 2 bits-back
             model id       8 bytes  the first 8 bytes of the model's SHA-256 (``model_hash``)
             dtype          u8       the examples' torch dtype (index in DTYPES; 0: none)
             flags          u8       bit 0: a conditioning c was given
             count          varint   examples
             data CRC-32    u32      of the examples as int64 (checked after decoding)
             c CRC-32       u32      of c, only when flag bit 0 is set
             payload bytes  varint
             payload CRC-32 u32
      tensor and text only:
             chunks         varint   range-coded streams, then each one's length (varint)
      text only:
             text tokens    varint   characters before the last window's padding
             vocab CRC-32   u32
      bits-back only:
             seed words     varint   words of the fixed seed kept under the payload
    payload  bytes          the range-coded chunks one after the other, or the ANS stack

So the header is 14 + 11 bytes, the CRCs and a few varints: 42 bytes for 1,000 binary
images in one range-coded chunk (46 with a c), 39 for their bits-back file, where the
version-1 JSON header took ~345 bytes. Everything else a decoder needs (event shape,
alphabet, quantisation, chunk size) is fixed by the model, whose identity the model id
checks, and by the format version. The model id is 64 bits of SHA-256: a
file decoded with the wrong model is refused except with odds 2^-64 (it names the model,
it does not authenticate it); the CRCs refuse a truncated or corrupted file, and the data
CRC a decoder whose conditionals differ from the encoder's.

Example:
    >>> blob = pack({"kind": "bits_back", "model_hash": "ab" * 32, "count": 3,
    ...              "seed_words_kept": 0}, b"abcd")
    >>> header, payload = unpack(blob)
    >>> header["count"], header["model_hash"], payload, len(blob) - len(payload)
    (3, 'abababababababab', b'abcd', 36)
    >>> try:
    ...     unpack(blob[:-1])
    ... except ContainerError as e:
    ...     print(e)
    the file is truncated: its header announces 4 payload bytes, it holds 3
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from typing import Any

from torch import Tensor

from dgm.config import to_dict
from dgm.model import GenerativeModel

MAGIC = b"DGMZ"
FORMAT_VERSION = 2  # 1: a JSON header (~345 bytes); 2: the binary header above
KINDS = ("tensor", "text", "bits_back")
DTYPES = (None, "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8")
DTYPES += ("uint8", "bool")
MODEL_ID_BYTES = 8
_PREFIX = struct.Struct("<4sHII")  # magic, version, header length, header CRC-32
_FIXED = struct.Struct(f"<B{MODEL_ID_BYTES}sBB")  # kind, model id, dtype, flags
_U32 = struct.Struct("<I")


class ContainerError(ValueError):
    """A compressed file that cannot be decoded: wrong magic or version, truncated,
    corrupted, or made with another model. The message names which and the fix."""


def crc32(data: bytes) -> int:
    """CRC-32 of ``data`` (zlib's), an int in 0..2^32-1."""
    return zlib.crc32(data) & 0xFFFFFFFF


def model_hash(model: GenerativeModel) -> str:
    """SHA-256 (hex) of the model's class, config, event shape and weights (every entry of
    ``state_dict``, floats as float64): equal for the same model in float32 or float64.
    A file keeps its first ``MODEL_ID_BYTES`` bytes."""
    h = hashlib.sha256()
    about = {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "config": to_dict(model.config),
        "event_shape": list(model.event_shape),
    }
    h.update(json.dumps(about, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu()
        t = t.double() if t.is_floating_point() else t.long()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def tensor_crc32(t: Tensor | None) -> int | None:
    """CRC-32 of a tensor's values (floats as float64, integers as int64, on the CPU), or
    None for no tensor: the check a file keeps of its data and of its conditioning c."""
    if t is None:
        return None
    t = t.detach().cpu()
    t = t.double() if t.is_floating_point() else t.long()
    return crc32(t.contiguous().numpy().tobytes())


# -- varints --------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"a header count must be >= 0, got {value}")
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


class _Reader:
    """Reads header fields in order; running off the end is a corrupted header."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise ContainerError("the file is corrupted: its header ends too early")
        self.at += size
        return self.data[self.at - size : self.at]

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
            if shift > 63:
                raise ContainerError("the file is corrupted: a header count is too long")


# -- pack / unpack --------------------------------------------------------------------------------


def pack(header: dict[str, Any], payload: bytes) -> bytes:
    """The file: prefix, the binary ``header`` (the fields of its kind, see the module;
    missing CRCs and dtype count as none) with the payload's length and CRC-32 added,
    then the payload."""
    kind = header["kind"]
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    c_crc = header.get("c_crc32")
    ident = bytes.fromhex(header["model_hash"])[:MODEL_ID_BYTES]
    fields = [
        _FIXED.pack(KINDS.index(kind), ident, DTYPES.index(header.get("dtype")), c_crc is not None),
        _varint(header["count"]),
        _U32.pack(header.get("data_crc32") or 0),
        b"" if c_crc is None else _U32.pack(c_crc),
        _varint(len(payload)),
        _U32.pack(crc32(payload)),
    ]
    if kind in ("tensor", "text"):
        chunks = header["chunk_bytes"]
        fields += [_varint(len(chunks)), *map(_varint, chunks)]
    if kind == "text":
        fields += [_varint(header["text_tokens"]), _U32.pack(header["vocab_crc32"])]
    if kind == "bits_back":
        fields.append(_varint(header["seed_words_kept"]))
    body = b"".join(fields)
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(body), crc32(body)) + body + payload


def _fields(body: bytes) -> dict[str, Any]:
    r = _Reader(body)
    kind, ident, dtype, flags = _FIXED.unpack(r.take(_FIXED.size))
    if kind >= len(KINDS) or dtype >= len(DTYPES):
        raise ContainerError("the file is corrupted: its header names no known kind or dtype")
    header: dict[str, Any] = {
        "kind": KINDS[kind],
        "model_hash": ident.hex(),
        "dtype": DTYPES[dtype],
        "count": r.varint(),
        "data_crc32": r.u32(),
        "c_crc32": r.u32() if flags & 1 else None,
        "payload_bytes": r.varint(),
        "payload_crc32": r.u32(),
    }
    if header["kind"] in ("tensor", "text"):
        header["chunk_bytes"] = [r.varint() for _ in range(r.varint())]
    if header["kind"] == "text":
        header["text_tokens"], header["vocab_crc32"] = r.varint(), r.u32()
    if header["kind"] == "bits_back":
        header["seed_words_kept"] = r.varint()
    if r.at != len(body):
        raise ContainerError("the file is corrupted: its header has bytes left over")
    header["header_bytes"] = _PREFIX.size + len(body)
    return header


def unpack(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, payload) of a file written by ``pack``, after checking the magic, the
    version, the header's CRC and the payload's length and CRC. The header dict also
    gives ``header_bytes``, the bytes before the payload."""
    if len(blob) < _PREFIX.size:
        if MAGIC.startswith(blob[:4]) and blob:
            raise ContainerError(f"the file is truncated: {len(blob)} bytes, not even a header")
        raise ContainerError(
            f"not a dgm compressed file (it holds {len(blob)} bytes, no {MAGIC!r} header): "
            "give a file written by dgm compress"
        )
    magic, version, length, header_crc = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise ContainerError(
            f"not a dgm compressed file (it starts with {magic!r}, not {MAGIC!r}): "
            "give a file written by dgm compress"
        )
    if version != FORMAT_VERSION:
        raise ContainerError(
            f"the file has format version {version}; this dgm reads version {FORMAT_VERSION}: "
            "decompress it with the dgm version that wrote it"
        )
    start = _PREFIX.size
    body = blob[start : start + length]
    if len(body) < length:
        raise ContainerError(
            f"the file is truncated: its header announces {length} header bytes, "
            f"it holds {len(body)}"
        )
    if crc32(body) != header_crc:
        raise ContainerError("the file is corrupted: its header fails its CRC-32 check")
    header = _fields(body)
    expected = header["payload_bytes"]
    payload = blob[start + length :]
    if len(payload) < expected:
        raise ContainerError(
            f"the file is truncated: its header announces {expected} payload bytes, "
            f"it holds {len(payload)}"
        )
    if len(payload) > expected:
        raise ContainerError(
            f"the file is corrupted: {len(payload) - expected} bytes follow the payload"
        )
    if crc32(payload) != header["payload_crc32"]:
        raise ContainerError("the file is corrupted: its payload fails its CRC-32 check")
    return header, payload


def check_model(header: dict[str, Any], model: GenerativeModel) -> None:
    """Refuse a file whose model id is not ``model``'s."""
    mine = model_hash(model)[: 2 * MODEL_ID_BYTES]
    if header.get("model_hash") != mine:
        raise ContainerError(
            f"the file was compressed with another model (id {header.get('model_hash')}; this "
            f"one is {type(model).__name__} {mine}): decompress it with the run (and the same "
            "--best / --no-ema choice) that compressed it"
        )


__all__ = [
    "DTYPES",
    "FORMAT_VERSION",
    "KINDS",
    "MAGIC",
    "MODEL_ID_BYTES",
    "ContainerError",
    "check_model",
    "crc32",
    "model_hash",
    "pack",
    "tensor_crc32",
    "unpack",
]
