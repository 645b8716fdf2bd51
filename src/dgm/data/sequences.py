"""Sequence data for hidden Markov models and outlier detection on sequences.

- ``hmm_gaussian``: sequences of ``block_size`` 2-D vectors drawn from a fixed 3-state HMM
  with Gaussian emissions (states near (−2, 0), (2, 0) and (0, 2.5), standard deviations
  0.5 to 0.8, sticky transitions that stay with probability 0.8 to 0.9): a toy whose
  generating law is known, so a fitted HMM's NLL can be set beside the true one
  (``TRUE_HMM``). ``num_samples`` sequences per split, seeded by ``seed`` and the split.
- ``shuffled_words``: the words of the same split of ``words`` (same options, same
  vocabulary and end token) with the letters of each word shuffled, seeded by ``seed`` and
  the split: the same letters, not English. An out-of-distribution set for a model of
  ``words``: ``dgm anomaly RUN --ood shuffled_words``.

Example:
    >>> from dgm.data import get
    >>> get("hmm_gaussian", "test", num_samples=4, block_size=10).x.shape
    torch.Size([4, 10, 2])
"""

from __future__ import annotations

import numpy as np
import torch

from dgm.data.dataset import TensorData, register_dataset
from dgm.data.images import split_seed
from dgm.data.options import HMMSequenceOptions, WordsOptions
from dgm.data.text import TextData, load_words

# the generating HMM of ``hmm_gaussian``: initial π (K,), transitions A (K, K) (row = from),
# emission means and standard deviations (K, 2)
TRUE_HMM = {
    "initial": [0.5, 0.3, 0.2],
    "transition": [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.1, 0.85]],
    "means": [[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]],
    "stds": [[0.6, 0.6], [0.8, 0.5], [0.5, 0.7]],
}


def sample_true_hmm(n: int, length: int, seed: int) -> torch.Tensor:
    """n sequences (n, length, 2) float32 of ``TRUE_HMM``, seeded."""
    rng = np.random.default_rng(seed)
    pi, A = np.array(TRUE_HMM["initial"]), np.array(TRUE_HMM["transition"])
    means, stds = np.array(TRUE_HMM["means"]), np.array(TRUE_HMM["stds"])
    z = np.empty((n, length), dtype=np.int64)
    z[:, 0] = rng.choice(len(pi), size=n, p=pi)
    cumulative = A.cumsum(1)  # (K, K): inverse-CDF draws of the next state, all rows at once
    for t in range(1, length):
        u = rng.random(n)[:, None]  # (n, 1)
        z[:, t] = np.minimum((u > cumulative[z[:, t - 1]]).sum(1), len(pi) - 1)
    x = means[z] + stds[z] * rng.standard_normal((n, length, 2))  # (n, T, 2)
    return torch.from_numpy(x.astype(np.float32))


@register_dataset(
    "hmm_gaussian", "toy: sequences of 2-D vectors from a known 3-state HMM", HMMSequenceOptions
)
def load_hmm_gaussian(split: str, root: str | None, options: HMMSequenceOptions) -> TensorData:
    """``num_samples`` sequences (N, ``block_size``, 2) of ``TRUE_HMM`` (see the module)."""
    num_samples, block_size, seed = options.num_samples, options.block_size, options.seed
    x = sample_true_hmm(num_samples, block_size, split_seed("hmm_gaussian", split, seed))
    return TensorData(x, name="hmm_gaussian")


def shuffle_letters(x: torch.Tensor, end_token: int, seed: int) -> torch.Tensor:
    """Each row of padded tokens (N, T) with the tokens before its first ``end_token``
    permuted at random (seeded); the end token and the padding stay where they are."""
    N, T = x.shape
    is_end = x == end_token  # (N, T)
    length = torch.where(is_end.any(1), is_end.long().argmax(1), T)  # (N,) letters per row
    g = torch.Generator().manual_seed(seed)
    keys = torch.rand(N, T, generator=g)  # (N, T)
    keys = keys.masked_fill(torch.arange(T) >= length[:, None], 2.0)  # padding sorts last
    order = keys.argsort(1)  # (N, T): a random permutation of each row's letters, then the rest
    return x.gather(1, order)


@register_dataset(
    "shuffled_words", "OOD for words: the same split's words, letters shuffled", WordsOptions
)
def load_shuffled_words(split: str, root: str | None, options: WordsOptions) -> TextData:
    """``words`` (same options) with the letters of each word shuffled (see the module)."""
    words, seed = load_words(split, root, options), options.seed
    end = words.info.end_token
    assert end is not None  # words are padded with their end token
    x = shuffle_letters(words.x, end, split_seed("shuffled_words", split, seed))
    return TextData(x, vocab=words.vocab, name="shuffled_words", end_token=end)
