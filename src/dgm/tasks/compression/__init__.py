"""Lossless compression of discrete data with a trained model: range coding with a
``DiscreteAutoregressive`` model's conditionals (``range_coding``), bits-back coding with
a VAE (``bits_back``), one checked file format for both (``container``), and the choice
between them for a given model (``choose_coder``).

Example:
    >>> import torch, dgm
    >>> from dgm.tasks.compression import choose_coder, compress, decompress
    >>> model = dgm.create("fvsbn", (1, 2, 2))
    >>> x = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    >>> choose_coder(model), torch.equal(decompress(model, compress(model, x)), x)
    ('range', True)
"""

from dgm.tasks.compression import bits_back, container, range_coding
from dgm.tasks.compression.coder import Coder, choose_coder
from dgm.tasks.compression.container import ContainerError
from dgm.tasks.compression.range_coding import (
    BATCH_SIZE,
    END,
    alphabet_size,
    check_compressible,
    compress,
    compress_text,
    decompress,
    decompress_text,
    nll_bits,
    payload_bits,
    read_header,
)

__all__ = [
    "BATCH_SIZE",
    "END",
    "Coder",
    "ContainerError",
    "alphabet_size",
    "bits_back",
    "check_compressible",
    "choose_coder",
    "compress",
    "compress_text",
    "container",
    "decompress",
    "decompress_text",
    "nll_bits",
    "payload_bits",
    "range_coding",
    "read_header",
]
