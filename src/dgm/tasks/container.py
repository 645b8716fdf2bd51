"""The file format of ``dgm compress``: a checked header, then the entropy-coded payload.

Layout (integers little-endian)::

    magic      4 bytes  b"DGMZ"
    version    u16      FORMAT_VERSION
    length     u32      bytes of the JSON header that follows
    crc        u32      CRC-32 of the JSON header
    header     JSON     what the payload holds: model hash, event shape, count, dtype, ...
    payload    bytes    the range-coded chunks, one after the other

The header names the model by a SHA-256 of its class, config, event shape and weights
(floats hashed as float64, so a float32 run and its float64 copy agree), and carries the
payload's length and CRC-32 and the CRC-32 of the original data: a file made with another
model, a truncated or corrupted file, and a wrong magic or version are each refused with a
``ContainerError`` that says which.

Example:
    >>> blob = pack({"count": 3}, b"abc")
    >>> header, payload = unpack(blob)
    >>> header["count"], payload
    (3, b'abc')
    >>> try:
    ...     unpack(blob[:-1])
    ... except ContainerError as e:
    ...     print(e)
    the file is truncated: its header announces 3 payload bytes, it holds 2
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from typing import Any

from dgm.config import to_dict
from dgm.model import GenerativeModel

MAGIC = b"DGMZ"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sHII")  # magic, version, header length, header CRC-32


class ContainerError(ValueError):
    """A compressed file that cannot be decoded: wrong magic or version, truncated,
    corrupted, or made with another model. The message names which and the fix."""


def crc32(data: bytes) -> int:
    """CRC-32 of ``data`` (zlib's), an int in 0..2^32-1."""
    return zlib.crc32(data) & 0xFFFFFFFF


def model_hash(model: GenerativeModel) -> str:
    """SHA-256 (hex) of the model's class, config, event shape and weights (every entry of
    ``state_dict``, floats as float64): equal for the same model in float32 or float64."""
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


def pack(header: dict[str, Any], payload: bytes) -> bytes:
    """The file: magic, version, the JSON ``header`` (with the payload's length and CRC-32
    added) and the payload."""
    header = {**header, "payload_bytes": len(payload), "payload_crc32": crc32(payload)}
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(text), crc32(text)) + text + payload


def unpack(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, payload) of a file written by ``pack``, after checking the magic, the
    version, the header's CRC and the payload's length and CRC."""
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
    text = blob[start : start + length]
    if len(text) < length:
        raise ContainerError(
            f"the file is truncated: its header announces {length} header bytes, "
            f"it holds {len(text)}"
        )
    if crc32(text) != header_crc:
        raise ContainerError("the file is corrupted: its header fails its CRC-32 check")
    try:
        header = json.loads(text)
        expected = int(header["payload_bytes"])
        int(header["payload_crc32"])
    except (ValueError, KeyError, TypeError) as e:
        raise ContainerError(f"the file is corrupted: its header is unreadable ({e})") from e
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
    """Refuse a file whose model hash is not ``model``'s."""
    mine = model_hash(model)
    if header.get("model_hash") != mine:
        raise ContainerError(
            f"the file was compressed with another model ({header.get('model_name', '?')} "
            f"{str(header.get('model_hash'))[:12]}…, this one is {type(model).__name__} "
            f"{mine[:12]}…): decompress it with the run (and the same --best / --no-ema "
            "choice) that compressed it"
        )


__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "ContainerError",
    "check_model",
    "crc32",
    "model_hash",
    "pack",
    "unpack",
]
