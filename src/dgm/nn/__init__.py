"""Shared network building blocks: MLPs and small convolutional encoders/decoders."""

from dgm.nn.conv import ConvDecoder, ConvEncoder
from dgm.nn.mlp import mlp

__all__ = ["ConvDecoder", "ConvEncoder", "mlp"]
