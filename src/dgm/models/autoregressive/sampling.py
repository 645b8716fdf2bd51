"""Drawing the next token of a sequence model: temperature, top-k and nucleus (top-p)
filtering, and a prompt the draws continue, shared by ``char_rnn`` and ``gpt``; apart
from the networks (STYLE rule 10).

References:
    Fan, Lewis & Dauphin 2018, Hierarchical Neural Story Generation, arXiv:1805.04833 (top-k).
    Holtzman et al. 2019, The Curious Case of Neural Text Degeneration, arXiv:1904.09751
    (nucleus sampling, top-p).

Example:
    >>> import torch
    >>> logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    >>> filter_logits(logits, top_k=2).isfinite().tolist()
    [[True, True, False, False]]
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor


class Text(str):
    """A prompt as text, the way ``dgm sample --prompt "the "`` gives it: the command line
    encodes it with the run's character vocabulary (``dgm.data.text.encode_prompt``) into
    the token ids that ``sample(prompt=...)`` takes. The option's type, so its flag reads
    text."""


@dataclasses.dataclass
class SequenceSampleOptions:
    temperature: float = 1.0  # divides the logits: < 1 sharper, > 1 flatter (1 = the model)
    top_k: int = 0  # draw among the k most likely tokens only (0 = off)
    top_p: float = 1.0  # draw among the most likely tokens holding this mass (1.0 = off)
    # The start of every sequence, the rest drawn given it. In Python token ids, a
    # LongTensor (P,) with P < T; on the command line text, which dgm sample encodes with
    # the run's character vocabulary (a character unseen in training is an error). The
    # type Text makes the flag read text; the models themselves refuse a str.
    prompt: Text | Tensor | None = None  # every sequence starts with this text (or ids (P,))

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """``logits`` (B, V) with the tokens outside the top k, and outside the smallest set of
    most likely tokens whose probability reaches ``top_p``, set to -inf (the most likely
    token always stays)."""
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of the tokens ranked above each
        drop = before >= top_p  # the first token (before = 0) is always kept
        logits = logits.masked_fill(drop.scatter(-1, order, drop), -math.inf)
    return logits


def draw(
    logits: Tensor, options: SequenceSampleOptions, generator: torch.Generator | None
) -> Tensor:
    """One token per row of ``logits`` (B, V), int64 (B,), under ``options``."""
    logits = filter_logits(logits / options.temperature, options.top_k, options.top_p)
    probs = logits.softmax(-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)
