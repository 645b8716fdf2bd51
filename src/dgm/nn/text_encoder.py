"""A small character-level text encoder: token ids (B, T) -> one feature vector (B, F).

The context network of a model conditioned on a short text (a prompt, a caption): an
embedding per character, a one-layer GRU read left to right, and a linear map of the GRU
state after the last character that is not padding. Trailing ``pad`` tokens are ignored
exactly (the GRU is causal and its state is read before them), so a text gives the same
features however far it is padded.

References:
    Cho et al. 2014, Learning Phrase Representations using RNN Encoder-Decoder for
    Statistical Machine Translation, arXiv:1406.1078 (GRU).
    Reed et al. 2016, Generative Adversarial Text to Image Synthesis, arXiv:1605.05396
    (a character-level text encoder as the condition of an image model).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TextEncoder(nn.Module):
    """Token ids (B, T) in 0..vocab_size-1 -> features (B, ``features``).

    Token ``pad`` at the end of a row is padding; a row of padding only (an empty text)
    gives the features of the zero state, ``out.bias``.

    Example:
        >>> import torch
        >>> enc = TextEncoder(vocab_size=5, features=8, pad=0)
        >>> text = torch.tensor([[3, 1, 4]])
        >>> padded = torch.tensor([[3, 1, 4, 0, 0]])
        >>> enc(text).shape
        torch.Size([1, 8])

        Equal up to float32 rounding: the GRU's input projection is one matrix product
        over all T positions, whose summation order depends on T.

        >>> bool((enc(text) - enc(padded)).abs().max() < 1e-6)
        True

        Another padding token: trailing 2s are padding, a trailing 0 is text.

        >>> enc = TextEncoder(vocab_size=5, features=8, pad=2)
        >>> bool((enc(text) - enc(torch.tensor([[3, 1, 4, 2, 2]]))).abs().max() < 1e-6)
        True
        >>> bool((enc(text) - enc(padded)).abs().max() < 1e-6)
        False
    """

    def __init__(
        self,
        vocab_size: int,
        features: int,
        *,
        embedding_dim: int = 32,
        hidden_size: int = 64,
        pad: int = 0,
    ) -> None:
        super().__init__()
        for name, v in (
            ("vocab_size", vocab_size),
            ("features", features),
            ("embedding_dim", embedding_dim),
            ("hidden_size", hidden_size),
        ):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if not 0 <= pad < vocab_size:
            raise ValueError(f"pad must be a token in 0..{vocab_size - 1}, got {pad}")
        self.vocab_size, self.pad = vocab_size, pad
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        self.gru = nn.GRU(embedding_dim, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, features)

    def lengths(self, tokens: Tensor) -> Tensor:
        """Characters before the trailing padding of each row, int64 (B,)."""
        T = tokens.shape[-1]
        position = torch.arange(1, T + 1, device=tokens.device)  # (T,)
        return ((tokens != self.pad) * position).amax(-1)  # (B,): last non-pad position

    def forward(self, tokens: Tensor) -> Tensor:
        """Features (B, F) of the texts ``tokens`` (B, T), int64."""
        if tokens.dim() != 2 or tokens.is_floating_point():
            raise ValueError(
                f"tokens have shape {tuple(tokens.shape)} and dtype {tokens.dtype}, "
                "expected integer token ids (B, T)"
            )
        h, _ = self.gru(self.embed(tokens))  # (B, T, H): the state after each character
        n = self.lengths(tokens)  # (B,)
        last = h.gather(1, (n - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, h.shape[-1]))
        state = last.squeeze(1) * (n > 0).unsqueeze(-1).to(h.dtype)  # (B, H); empty: 0
        return self.out(state)  # (B, F)
