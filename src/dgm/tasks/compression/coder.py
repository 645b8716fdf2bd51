"""Which coder compresses a model's data: range coding with the per-dimension
conditionals of a ``DiscreteAutoregressive`` model (``range_coding``), or bits-back coding
with a latent-variable model's posterior, prior and discrete p(x | z) (``bits_back``).

Example:
    >>> import dgm
    >>> choose_coder(dgm.create("fvsbn", (1, 3, 3)))
    'range'
    >>> choose_coder(dgm.create("vae", (1, 3, 3), latent_dim=2, hidden_sizes=(8,)))
    'bits_back'
"""

from __future__ import annotations

from typing import Literal

from dgm.model import DiscreteAutoregressive, GenerativeModel
from dgm.tasks.compression.bits_back import check_bits_back
from dgm.tasks.compression.range_coding import check_compressible

Coder = Literal["range", "bits_back"]


def choose_coder(model: GenerativeModel) -> Coder:
    """``"range"`` for a model with per-dimension conditionals of discrete x,
    ``"bits_back"`` for a latent-variable model of discrete x; otherwise ``ValueError``
    naming the models that can compress."""
    if isinstance(model, DiscreteAutoregressive):
        check_compressible(model)  # its x must still be binary or integers 0..L-1
        return "range"
    try:
        check_bits_back(model)
    except ValueError:
        try:
            check_compressible(model)
        except ValueError as e:  # names the DiscreteAutoregressive models
            raise ValueError(f"{e}; or, by bits-back coding, vae (discrete x)") from None
        raise
    return "bits_back"


__all__ = ["Coder", "choose_coder"]
