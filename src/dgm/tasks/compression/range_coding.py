"""Lossless compression with a model's conditionals: entropy coding of discrete data.

A ``DiscreteAutoregressive`` model gives p(x_d | x_<d) for each flattened dimension in its
``ordering()``; a range coder (constriction's ``RangeEncoder``, Duda / Bamler's
library, not a hand-written coder) spends −log2 p(x_d | x_<d) bits on each, so a file
costs about the model's NLL in bits. Decoding rebuilds x one dimension at a time in that
order, calling the model on the partly decoded x (D model calls per batch of examples).

Bit-exact decoding needs the encoder and the decoder to see the *same* integer
probabilities. Both run the model in float64 in eval mode; the encoder's one
teacher-forced pass gives exactly the decoder's conditionals (the contract: x_d moves no
conditional at or before d, bit for bit). The float logits still move by an ulp between
batch sizes and thread counts (a BLAS reduction order), so they are quantised coarsely
before anything depends on them: logits relative to their maximum are rounded to a grid
of 2^-10 nats (a flip needs an ulp-sized error to straddle a grid point: odds ~1e-12 per
value) and clipped at −40 nats, then turned into integer frequencies, each at least 1,
summing to exactly 2^24 (the rest goes to the most likely value). The cost of rounding
is below 1e-6 bits per value; the floor of 2^-24 per value adds at most V 2^-24 of mass.

Examples are coded in chunks of ``chunk`` (fixed by D and V, so the bytes do not depend
on the batch size): one range-coded stream per chunk, the chunk's examples interleaved
dimension by dimension, so the decoder decodes all examples of a chunk (and several
chunks) with one model call per dimension. ``container`` holds the header (magic,
version, model id, count, dtype, CRCs, chunk lengths: 40 to 50 bytes) that makes a
foreign, truncated or corrupted file an error.

References:
    MacKay 2003, Information Theory, Inference, and Learning Algorithms, ch. 6
    (arithmetic coding with a predictive model).
    Bamler 2022, Understanding Entropy Coding With Asymmetric Numeral Systems (ANS): a
    Statistician's Perspective, arXiv:2201.01741 (the constriction library).

Example:
    >>> import torch, dgm
    >>> model = dgm.create("fvsbn", (1, 3, 3))
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.bernoulli(torch.full((5, 1, 3, 3), 0.3), generator=g)
    >>> blob = compress(model, x)
    >>> torch.equal(decompress(model, blob), x)
    True
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator

import constriction
import numpy as np
import torch
from torch import Tensor
from torch.distributions import constraints

from dgm.model import DiscreteAutoregressive, GenerativeModel
from dgm.tasks.compression.container import (
    ContainerError,
    check_model,
    crc32,
    model_hash,
    pack,
    tensor_crc32,
    unpack,
)

PRECISION = 24  # frequencies sum to 2^24: constriction's default precision for its coders
GRID_BITS = 10  # logits are rounded to multiples of 2^-10 nats before quantising
MIN_LOGIT = -40.0  # nats below the largest logit: e^-40 is far below 2^-24, clipped
TABLE_ENTRIES = 1 << 22  # chunk x D x V frequencies the encoder holds at once (32 MiB)
MAX_CHUNK = 4096  # examples per range-coded stream (its flush and length cost ~6-9 bytes)
BATCH_SIZE = 64  # examples per model call
END = "\n"  # the padding token of a text's last window, where the vocabulary has it

_FAMILY = constriction.stream.model.Categorical(perfect=False)


# -- the model's conditionals as integer frequencies -----------------------------------------


def frequencies(logits: Tensor) -> np.ndarray:
    """Integer frequencies (n, V), int64, each >= 1 and summing to 2^PRECISION, from
    logits (n, V). Deterministic, and unchanged by ulp-sized changes of the logits except
    with odds ~1e-12 per value (see the module).

    Example:
        >>> f = frequencies(torch.tensor([[0.0, 0.0], [2.0, -1.0]], dtype=torch.float64))
        >>> f.tolist(), bool((f.sum(-1) == 2**24).all())
        ([[8388608, 8388608], [15981541, 795675]], True)
    """
    z = logits.detach().double().cpu().numpy()  # (n, V)
    z = z - z.max(-1, keepdims=True)
    steps = np.rint(np.clip(z, MIN_LOGIT, 0.0) * (1 << GRID_BITS))  # integers <= 0
    w = np.exp(steps / (1 << GRID_BITS))  # exact inputs: the same w on both sides
    n, V = w.shape
    free = (1 << PRECISION) - V
    freq = np.floor(w / w.sum(-1, keepdims=True) * free).astype(np.int64) + 1
    freq[np.arange(n), steps.argmax(-1)] += (1 << PRECISION) - freq.sum(-1)
    return freq


def alphabet_size(model: GenerativeModel) -> int:
    """V, the values of one dimension: 2 for binary x, L for integers in 0..L-1."""
    support = model.support
    if support is constraints.boolean:
        return 2
    if isinstance(support, constraints.integer_interval) and support.lower_bound == 0:
        return int(support.upper_bound) + 1
    raise ValueError(
        f"{type(model).__name__} models x in {support}: compression needs binary x or "
        "integers in 0..L-1"
    )


def check_compressible(model: GenerativeModel) -> None:
    """Refuse a model without ``DiscreteAutoregressive`` conditionals, naming those with."""
    from dgm.capabilities import require

    require(model, DiscreteAutoregressive, "compression")
    alphabet_size(model)


def chunk_size(num_dims: int, values: int) -> int:
    """Examples per range-coded stream: as many as fit ``TABLE_ENTRIES`` frequencies, at
    most ``MAX_CHUNK`` (a function of D and V only, so the bytes do not depend on the
    batch size)."""
    return max(1, min(MAX_CHUNK, TABLE_ENTRIES // (num_dims * values)))


def float64_copy(model: GenerativeModel) -> GenerativeModel:
    """An eval-mode float64 copy (the caller's model keeps its dtype and mode); the support
    object is shared, not copied (``constraints.boolean`` is tested by identity)."""
    return copy.deepcopy(model, {id(model.support): model.support}).double().eval()


def _ranges(start: int, stop: int, step: int) -> Iterator[tuple[int, int]]:
    for s in range(start, stop, step):
        yield s, min(s + step, stop)


def _conditional_frequencies(
    model: GenerativeModel, x: Tensor, c: Tensor | None, d: int | None, batch_size: int
) -> np.ndarray:
    """Frequencies of every dimension (n, D, V) given x (teacher forcing), or of
    dimension d alone (n, V), from model calls of at most ``batch_size`` examples."""
    out = []
    with torch.no_grad():
        for s, e in _ranges(0, len(x), batch_size):
            logits = model.conditional_logits(x[s:e], None if c is None else c[s:e])  # (b, D, V)
            logits = logits if d is None else logits[:, d]
            out.append(frequencies(logits.reshape(-1, logits.shape[-1])).reshape(logits.shape))
    return np.concatenate(out)


# -- inputs -------------------------------------------------------------------------------------


def model_input(model: GenerativeModel, x: Tensor) -> Tensor:
    """x as the model takes it (binary data may come as bool or integers), checked."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
    if model.support is constraints.boolean and not x.is_floating_point():
        x = x.to(torch.float64)
    return model.check_x(x.to(model.device))


# -- compress / decompress ------------------------------------------------------------------


def compress(
    model: GenerativeModel,
    x: Tensor,
    c: Tensor | None = None,
    *,
    batch_size: int = BATCH_SIZE,
) -> bytes:
    """The examples x (n, *event_shape) in the model's support, entropy-coded with the
    model's conditionals p(x_d | x_<d, c): a container (header + payload) for
    ``decompress``. The bytes do not depend on ``batch_size`` (examples per model call)
    nor on the thread count."""
    return _compress(model, x, c, batch_size, "tensor", None)


def _compress(
    model: GenerativeModel,
    x: Tensor,
    c: Tensor | None,
    batch_size: int,
    kind: str,
    text: dict | None,
) -> bytes:
    """``compress``, writing a header of ``kind`` with the ``text`` fields (text_tokens,
    vocab_crc32) where it is text."""
    check_compressible(model)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    dtype = str(x.dtype).removeprefix("torch.") if isinstance(x, Tensor) else None
    m = float64_copy(model)
    xm = model_input(m, x)
    n, D, V = len(xm), m.num_dims, alphabet_size(m)
    cm = m.check_c(c, n)
    order = m.ordering().cpu().numpy()
    symbols = xm.reshape(n, D).long().cpu()  # (n, D)
    chunk = chunk_size(D, V)
    streams = []
    for s, e in _ranges(0, n, chunk):
        sub = None if cm is None else cm[s:e]
        freq = _conditional_frequencies(m, xm[s:e], sub, None, min(batch_size, chunk))
        if freq.shape[1:] != (D, V):
            raise ValueError(
                f"{type(model).__name__}.conditional_logits gave shape {freq.shape[1:]} per "
                f"example, expected ({D}, {V})"
            )
        step_major = freq[:, order].transpose(1, 0, 2).reshape(-1, V)  # (D * b, V)
        coder = constriction.stream.queue.RangeEncoder()
        values = symbols[s:e][:, order].T.reshape(-1).numpy().astype(np.int32)  # (D * b,)
        coder.encode(values, _FAMILY, step_major.astype(np.float64))
        streams.append(coder.get_compressed().astype("<u4").tobytes())
    header = {
        "kind": kind,
        "model_hash": model_hash(model),
        "count": n,
        "dtype": dtype,
        "chunk_bytes": [len(b) for b in streams],
        "data_crc32": tensor_crc32(symbols),
        "c_crc32": tensor_crc32(cm),
        **(text or {}),
    }
    return pack(header, b"".join(streams))


def read_header(blob: bytes) -> dict:
    """The checked header of a compressed file (``ContainerError`` if it is not one)."""
    return unpack(blob)[0]


def decompress(
    model: GenerativeModel,
    blob: bytes,
    c: Tensor | None = None,
    *,
    batch_size: int | None = None,
) -> Tensor:
    """The examples ``compress`` coded into ``blob``, bit for bit, in their original
    dtype; ``batch_size`` is examples per model call (any: the bytes do not depend on it).
    A file of another model or c, truncated or corrupted, raises ``ContainerError``."""
    header, payload = unpack(blob)
    check_model(header, model)  # first: a file of another model says so, whatever that model
    check_compressible(model)
    m = float64_copy(model)
    if header["kind"] == "bits_back":
        raise ContainerError(
            "the file was bits-back coded: decompress it with dgm.tasks.compression.bits_back"
        )
    n, D, V = header["count"], m.num_dims, alphabet_size(m)
    chunk = chunk_size(D, V)
    batch_size = BATCH_SIZE if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    cm = m.check_c(c, n)
    if tensor_crc32(cm) != header["c_crc32"]:
        raise ContainerError(
            "the conditioning c differs from the one the file was compressed with: pass the same c"
        )
    order = m.ordering().cpu().numpy()
    offsets = np.concatenate([[0], np.cumsum(header["chunk_bytes"])]).tolist()
    words = [
        np.frombuffer(payload[a:b], dtype="<u4").astype(np.uint32)
        for a, b in itertools.pairwise(offsets)
    ]
    if len(words) != math.ceil(n / chunk):
        raise ContainerError("the file is corrupted: its chunk table does not match its count")
    dtype = torch.float64 if m.support is constraints.boolean else torch.long
    symbols = torch.zeros(n, D, dtype=torch.long)
    per_group = chunk * max(1, batch_size // chunk)
    for g0, g1 in _ranges(0, n, per_group):
        decoders = [
            (s - g0, e - g0, constriction.stream.queue.RangeDecoder(words[s // chunk]))
            for s, e in _ranges(g0, g1, chunk)
        ]
        partial = torch.zeros(g1 - g0, D, dtype=dtype, device=m.device)  # decoded so far
        sub = None if cm is None else cm[g0:g1]
        for d in order:
            shaped = partial.view(g1 - g0, *m.event_shape)
            freq = _conditional_frequencies(m, shaped, sub, int(d), batch_size)  # (G, V)
            for s, e, decoder in decoders:
                try:
                    got = decoder.decode(_FAMILY, freq[s:e].astype(np.float64))
                except Exception as err:  # constriction's own error on a bad stream
                    raise ContainerError(f"the file is corrupted: {err}") from err
                partial[s:e, d] = torch.from_numpy(got.astype(np.int64)).to(partial)
        symbols[g0:g1] = partial.long().cpu()
    if tensor_crc32(symbols) != header["data_crc32"]:
        raise ContainerError(
            "the decoded data fail the file's CRC-32 check: the file is corrupted, or the "
            "model's conditionals differ from the compressor's (same run, same weights?)"
        )
    x = symbols.view(n, *m.event_shape)
    return x.to(getattr(torch, header["dtype"])) if header.get("dtype") else x


# -- text -------------------------------------------------------------------------------------


def _check_text_model(model: GenerativeModel, vocab: str) -> int:
    """T, the window length, of a model of token sequences over ``vocab``."""
    if len(model.event_shape) != 1 or not model.integer_data:
        raise ValueError(
            f"{type(model).__name__} models x of shape {tuple(model.event_shape)}; text needs "
            "a model of token sequences (T,), e.g. char_rnn or gpt"
        )
    if alphabet_size(model) != len(vocab):
        raise ValueError(
            f"the vocabulary has {len(vocab)} characters but the model has "
            f"{alphabet_size(model)} tokens: give the run's vocabulary (config.json 'vocab')"
        )
    return int(model.event_shape[0])


def compress_text(
    model: GenerativeModel, text: str, vocab: str, *, batch_size: int = BATCH_SIZE
) -> bytes:
    """``text``, as tokens of ``vocab`` (token i is ``vocab[i]``), coded in windows of the
    model's T tokens; the last window is padded with the end token "\\n" (or token 0) and
    the header keeps the text's length, so ``decompress_text`` returns exactly ``text``."""
    from dgm.data.text import encode

    T = _check_text_model(model, vocab)
    missing = sorted(set(text) - set(vocab))
    if missing:
        raise ValueError(
            f"the text holds characters {missing[:10]} that are not in the run's vocabulary: "
            "compress text made of the characters the model was trained on"
        )
    tokens = encode(text, vocab)  # (L,)
    n = math.ceil(len(tokens) / T)
    pad = vocab.index(END) if END in vocab else 0
    x = torch.full((n * T,), pad, dtype=torch.long)
    x[: len(tokens)] = tokens
    fields = {"text_tokens": len(tokens), "vocab_crc32": crc32(vocab.encode())}
    return _compress(model, x.view(n, T), None, batch_size, "text", fields)


def decompress_text(
    model: GenerativeModel, blob: bytes, vocab: str, *, batch_size: int | None = None
) -> str:
    """The text ``compress_text`` coded into ``blob``."""
    header = read_header(blob)
    if header.get("kind") != "text":
        raise ContainerError("the file holds a tensor, not text: decompress it to a .npy or .pt")
    _check_text_model(model, vocab)
    if crc32(vocab.encode()) != header["vocab_crc32"]:
        raise ContainerError("the file was compressed with another vocabulary")
    tokens = decompress(model, blob, batch_size=batch_size).reshape(-1)[: header["text_tokens"]]
    return "".join(vocab[t] for t in tokens.tolist())


# -- measures ---------------------------------------------------------------------------------


def nll_bits(
    model: GenerativeModel, x: Tensor, c: Tensor | None = None, *, batch_size: int = 256
) -> float:
    """−log2 p(x | c) of all examples together, in bits (float64): the ideal code length."""
    m = float64_copy(model)
    xm = model_input(m, x)
    cm = m.check_c(c, len(xm))
    total = 0.0
    with torch.no_grad():
        for s, e in _ranges(0, len(xm), batch_size):
            lp = m.log_prob(xm[s:e], None if cm is None else cm[s:e])
            total -= float(lp.sum())
    return total / math.log(2)


def payload_bits(blob: bytes) -> int:
    """Bits of the entropy-coded payload (the file less its header)."""
    return 8 * read_header(blob)["payload_bytes"]


__all__ = [
    "BATCH_SIZE",
    "ContainerError",
    "alphabet_size",
    "check_compressible",
    "chunk_size",
    "compress",
    "compress_text",
    "decompress",
    "decompress_text",
    "float64_copy",
    "frequencies",
    "model_input",
    "nll_bits",
    "payload_bits",
    "read_header",
]
