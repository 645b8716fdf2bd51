"""Bits-back coding (BB-ANS) of discrete data with a latent-variable model: about −ELBO
bits per example, with an ANS stack coder (constriction's ``AnsCoder``).

For each chunk of examples the encoder *decodes* a latent z from the stack with the
posterior q(z | x) (taking bits off: the "bits back"), encodes x with p(x | z) and then z
with the prior p(z); the decoder runs the three steps backwards (z from the prior, x given
z, then z is encoded back with q(z | x), returning the borrowed bits). Net cost per
example: −log p(x | z) − log p(z) + log q(z | x), whose mean over z ~ q is −ELBO.

z lives on a grid of width δ = 2^-LATENT_BITS (in the latent's units: the prior's
standard deviations for a VAE), from −8 to 8; prior and posterior are Gaussians
quantised to that grid (constriction's ``QuantizedGaussian``), so the δ^L terms cancel.
Their means and standard deviations, in grid units, are rounded to 2^-12 before use, and
p(x | z) goes through ``range_coding.frequencies``, so encoder and decoder agree across batch
sizes and thread counts as for ``range_coding``.

The first example borrows its bits from a fixed pseudo-random seed of the stack, which the
decoder finds again at the end (a check of the whole file); the borrowed bits stay in the
file (BB-ANS's start-up cost: the entropy of q(z | x), about L x 8 bits, once), the
seed's untouched words do not. A chunk of b examples takes b x H(q) bits off the stack
before it puts any back, so chunks grow with what is already coded: one example while
fewer than 8 are coded, then a quarter of those coded, at most ``CHUNK`` (``chunks``).
Each chunk then finds enough coded bits on the stack whenever −ELBO is above a quarter of
H(q), and only the first example borrows. (Chunks of 32 from the start made every example
of the first chunk borrow: 19 % over −ELBO on 20 images.)

Models: ``Encodable`` with a Normal posterior and prior and a Bernoulli or categorical
p(x | z) (the VAE with ``decoder="bernoulli"`` or ``"categorical"``).

References:
    Townsend, Bird & Barber 2019, Practical Lossless Compression with Latent Variables
    using Bits Back Coding, arXiv:1901.04866.
    Frey & Hinton 1997, Efficient Stochastic Source Coding and an Application to a
    Bayesian Network Source Model.

Example:
    >>> import torch, dgm
    >>> model = dgm.create("vae", (1, 3, 3), latent_dim=2, hidden_sizes=(8,))
    >>> x = torch.ones(4, 1, 3, 3)
    >>> torch.equal(decompress(model, compress(model, x)), x)
    True
"""

from __future__ import annotations

import math

import constriction
import numpy as np
import torch
from torch import Tensor
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, Normal

from dgm.model import ELBOTerms, Encodable, GenerativeModel
from dgm.tasks.compression.container import (
    ContainerError,
    check_model,
    model_hash,
    pack,
    tensor_crc32,
    unpack,
)
from dgm.tasks.compression.range_coding import float64_copy, frequencies, model_input

LATENT_BITS = 6  # the latent grid: buckets of width 2^-6
LATENT_RANGE = 8.0  # z on [-8, 8]: the prior's mass beyond is below 1e-15
PARAM_BITS = 12  # means and standard deviations (grid units) rounded to 2^-12
CHUNK = 32  # examples per step of the coder at most (fixed: the bytes do not depend on batch size)
GROWTH = 4  # a chunk holds at most 1/GROWTH of the examples coded before it
SEED_BITS = 12  # seed bits per latent value of the first chunk
BATCH_SIZE = 64

_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


def _base(dist: Distribution) -> Distribution:
    return dist.base_dist if isinstance(dist, Independent) else dist


def check_bits_back(model: GenerativeModel) -> None:
    """Refuse a model bits-back coding cannot use, saying why."""
    name = type(model).__name__
    if not isinstance(model, Encodable):
        raise ValueError(f"{name} has no latent space (Encodable): no bits-back coding")
    if not isinstance(model, ELBOTerms):  # a flow's z = f(x), DDIM's x_T: no q(z | x)
        raise ValueError(
            f"{name} encodes x deterministically (no posterior q(z | x) to take bits back "
            "from): bits-back coding needs a stochastic encoder, e.g. a vae"
        )
    if not isinstance(_base(model.prior()), Normal):
        raise ValueError(
            f"{name}'s prior is {type(_base(model.prior())).__name__}, not a Normal: "
            "bits-back coding here needs a Gaussian prior and posterior"
        )
    if not model.support.is_discrete:
        raise ValueError(f"{name} models real x: bits-back coding needs discrete x")


def _grid(values: Tensor) -> np.ndarray:
    """Float64 values rounded to multiples of 2^-PARAM_BITS (deterministic agreement)."""
    scale = float(1 << PARAM_BITS)
    return np.rint(values.detach().double().cpu().numpy() * scale) / scale


def _gaussian(dist: Distribution) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation in grid units, flat and rounded, of a (batched) Normal."""
    base = _base(dist)
    delta = 2.0**-LATENT_BITS
    mean = _grid(base.loc / delta).reshape(-1)
    std = np.maximum(_grid(base.scale / delta).reshape(-1), 2.0**-PARAM_BITS)
    return mean, std


def _x_frequencies(model: GenerativeModel, z: Tensor, c: Tensor | None) -> np.ndarray:
    """Integer frequencies (b * D, V) of p(x | z) per flattened dimension."""
    base = _base(model.decode(z, c))
    if isinstance(base, Bernoulli):
        logits = base.logits.reshape(len(z), -1)  # (b, D)
        logits = torch.stack([torch.zeros_like(logits), logits], -1)  # (b, D, 2)
    elif isinstance(base, Categorical):
        logits = base.logits.reshape(len(z), model.num_dims, -1)  # (b, D, V)
    else:
        raise ValueError(
            f"{type(model).__name__}.decode gives a {type(base).__name__}: bits-back coding "
            "needs a Bernoulli or categorical p(x | z)"
        )
    return frequencies(logits.reshape(-1, logits.shape[-1]))


def chunks(n: int) -> list[tuple[int, int]]:
    """The (start, stop) of each chunk of n examples: one example while fewer than
    2 x GROWTH are coded, then a 1/GROWTH of those coded, at most CHUNK.

    Example:
        >>> [e - s for s, e in chunks(60)]
        [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 3, 4, 5, 6, 8, 10, 9]
    """
    out, s = [], 0
    while s < n:
        e = min(n, s + min(CHUNK, max(1, s // GROWTH)))
        out.append((s, e))
        s = e
    return out


def _seed_words(latent: int) -> np.ndarray:
    count = math.ceil(CHUNK * latent * SEED_BITS / 32)
    return np.random.default_rng(0).integers(0, 1 << 32, count, dtype=np.uint32)


def _latent_model() -> object:
    k = int(LATENT_RANGE * (1 << LATENT_BITS))
    return constriction.stream.model.QuantizedGaussian(-k, k)


def compress(model: GenerativeModel, x: Tensor, c: Tensor | None = None) -> bytes:
    """The examples x (n, *event_shape), bits-back coded with the model's q(z | x),
    p(x | z) and p(z): a container for ``decompress``."""
    check_bits_back(model)
    dtype = str(x.dtype).removeprefix("torch.") if isinstance(x, Tensor) else None
    m = float64_copy(model)
    xm = model_input(m, x)
    n, D = len(xm), m.num_dims
    cm = m.check_c(c, n)
    symbols = xm.reshape(n, D).long().cpu()
    latent = int(m.prior().event_shape.numel())
    zmodel, delta = _latent_model(), 2.0**-LATENT_BITS
    prior_mean, prior_std = _gaussian(m.prior())
    coder = constriction.stream.stack.AnsCoder(_seed_words(latent))
    with torch.no_grad():
        for s, e in chunks(n):
            sub = None if cm is None else cm[s:e]
            mean, std = _gaussian(m.encode(xm[s:e], sub))  # q(z | x), (b * L,)
            k = coder.decode(zmodel, mean, std)  # the bits back
            z = torch.from_numpy(k.astype(np.float64) * delta).view(e - s, latent)
            freq = _x_frequencies(m, z.to(m.device, m.dtype), sub)  # (b * D, V)
            values = symbols[s:e].reshape(-1).numpy().astype(np.int32)
            coder.encode_reverse(values, _CATEGORICAL, freq.astype(np.float64))
            b = e - s
            coder.encode_reverse(k, zmodel, np.tile(prior_mean, b), np.tile(prior_std, b))
    header = {
        "kind": "bits_back",
        "model_hash": model_hash(model),
        "count": n,
        "dtype": dtype,
        "data_crc32": tensor_crc32(symbols),
        "c_crc32": tensor_crc32(cm),
    }
    words, seed = coder.get_compressed(), _seed_words(latent)
    kept = 0  # the seed's words never borrowed stay at the bottom of the stack: not stored
    while kept < min(len(words), len(seed)) and words[kept] == seed[kept]:
        kept += 1
    header["seed_words_kept"] = kept
    return pack(header, words[kept:].astype("<u4").tobytes())


def decompress(model: GenerativeModel, blob: bytes, c: Tensor | None = None) -> Tensor:
    """The examples ``compress`` coded into ``blob``, bit for bit, in their dtype."""
    header, payload = unpack(blob)
    if header.get("kind") != "bits_back":
        raise ContainerError(
            "the file was not bits-back coded: use dgm.tasks.compression.decompress"
        )
    check_model(header, model)
    check_bits_back(model)
    m = float64_copy(model)
    n, D = header["count"], m.num_dims
    cm = m.check_c(c, n)
    if tensor_crc32(cm) != header["c_crc32"]:
        raise ContainerError("the conditioning c differs from the compressor's: pass the same c")
    latent = int(m.prior().event_shape.numel())
    zmodel, delta = _latent_model(), 2.0**-LATENT_BITS
    prior_mean, prior_std = _gaussian(m.prior())
    seed = _seed_words(latent)
    kept = int(header["seed_words_kept"])
    if not 0 <= kept <= len(seed):
        raise ContainerError("the file is corrupted: its header's seed count is out of range")
    words = np.concatenate([seed[:kept], np.frombuffer(payload, "<u4").astype(np.uint32)])
    coder = constriction.stream.stack.AnsCoder(words)
    symbols = torch.zeros(n, D, dtype=torch.long)
    xdtype = torch.long if m.integer_data else torch.float64
    with torch.no_grad():
        for s, e in reversed(chunks(n)):
            b, sub = e - s, None if cm is None else cm[s:e]
            k = coder.decode(zmodel, np.tile(prior_mean, b), np.tile(prior_std, b))
            z = torch.from_numpy(k.astype(np.float64) * delta).view(b, latent)
            freq = _x_frequencies(m, z.to(m.device, m.dtype), sub)
            values = coder.decode(_CATEGORICAL, freq.astype(np.float64))
            symbols[s:e] = torch.from_numpy(values.astype(np.int64)).view(b, D)
            xb = symbols[s:e].view(b, *m.event_shape).to(m.device, xdtype)
            mean, std = _gaussian(m.encode(xb, sub))
            coder.encode_reverse(k, zmodel, mean, std)  # the borrowed bits, returned
    if (
        not np.array_equal(coder.get_compressed(), seed)
        or tensor_crc32(symbols) != header["data_crc32"]
    ):
        raise ContainerError(
            "the decoded data fail the file's checks: the file is corrupted, or the "
            "model differs from the compressor's"
        )
    out = symbols.view(n, *m.event_shape)
    return out.to(getattr(torch, header["dtype"])) if header.get("dtype") else out


__all__ = ["check_bits_back", "chunks", "compress", "decompress"]
