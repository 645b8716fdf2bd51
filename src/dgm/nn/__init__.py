"""Shared network building blocks: MLPs and small convolutional encoders/decoders."""

from dgm.nn.conv import ConvDecoder, ConvEncoder
from dgm.nn.masked import MADE, MaskedLinear, made_masks, natural_ordering, random_ordering
from dgm.nn.mlp import mlp

__all__ = [
    "MADE",
    "ConvDecoder",
    "ConvEncoder",
    "MaskedLinear",
    "made_masks",
    "mlp",
    "natural_ordering",
    "random_ordering",
]
