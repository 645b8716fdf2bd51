"""Shared network building blocks: MLPs and small convolutional encoders/decoders."""

from dgm.nn.conv import ConvDecoder, ConvEncoder
from dgm.nn.masked import MADE, MaskedLinear, made_masks, natural_ordering, random_ordering
from dgm.nn.masked_conv import GatedLayer, MaskedConv2d
from dgm.nn.mlp import mlp
from dgm.nn.unet import UNet, timestep_embedding

__all__ = [
    "MADE",
    "ConvDecoder",
    "ConvEncoder",
    "GatedLayer",
    "MaskedConv2d",
    "MaskedLinear",
    "UNet",
    "made_masks",
    "mlp",
    "natural_ordering",
    "random_ordering",
    "timestep_embedding",
]
