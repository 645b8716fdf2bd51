"""Sequence data: the Gaussian HMM toy follows its known law, and shuffled words hold the
same letters as the words, in another order."""

import numpy as np
import torch

from dgm.data import get
from dgm.data.sequences import TRUE_HMM, shuffle_letters


def test_hmm_gaussian_is_seeded_per_split_and_has_the_stationary_mean():
    a = get("hmm_gaussian", "train", num_samples=3000, block_size=30)
    assert a.x.shape == (3000, 30, 2) and a.x.dtype == torch.float32
    assert torch.equal(a.x, get("hmm_gaussian", "train", num_samples=3000, block_size=30).x)
    assert not torch.equal(a.x[:10], get("hmm_gaussian", "test", num_samples=10, block_size=30).x)
    A = np.array(TRUE_HMM["transition"])
    pi = np.array(TRUE_HMM["initial"])
    expected = []
    for _ in range(30):  # E[x_t] = p(z_t) @ means, averaged over t
        expected.append(pi @ np.array(TRUE_HMM["means"]))
        pi = pi @ A
    mean = torch.tensor(np.mean(expected, 0), dtype=torch.float32)
    se = a.x.std() / (3000**0.5)  # per-sequence means are independent across sequences
    assert ((a.x.mean((0, 1)) - mean).abs() < 6 * se).all()
    # E[x_t²] = Σ_k p(z_t = k)(σ_k² + μ_k²): the emission spread too, not the mean alone
    pi, square = np.array(TRUE_HMM["initial"]), []
    moments = np.array(TRUE_HMM["stds"]) ** 2 + np.array(TRUE_HMM["means"]) ** 2  # (K, 2)
    for _ in range(30):
        square.append(pi @ moments)
        pi = pi @ A
    per_sequence = a.x.square().mean(1)  # (3000, 2): independent across sequences
    want = torch.tensor(np.mean(square, 0), dtype=torch.float32)
    se = per_sequence.std(0) / (3000**0.5)
    assert ((per_sequence.mean(0) - want).abs() < 6 * se).all(), (per_sequence.mean(0), want)
    # E[x_t · x_{t+1}] = Σ_kl p(z_t = k) A_kl μ_k · μ_l: each step follows its own
    # sequence's last state (the two moments above hold for any pairing of the sequences)
    mu = np.array(TRUE_HMM["means"])
    pi, lagged = np.array(TRUE_HMM["initial"]), []
    for _ in range(29):
        lagged.append(float(pi @ (A * (mu @ mu.T)).sum(1)))
        pi = pi @ A
    per_sequence = (a.x[:, :-1] * a.x[:, 1:]).sum(-1).mean(1)  # (3000,)
    se = per_sequence.std() / (3000**0.5)
    assert abs(per_sequence.mean() - np.mean(lagged)) < 6 * se, (per_sequence.mean(), lagged)


def test_shuffled_words_permute_each_word_and_keep_its_padding():
    words = get("words", "test")
    shuffled = get("shuffled_words", "test")
    assert shuffled.vocab == words.vocab and shuffled.info.end_token == words.info.end_token
    assert torch.equal(shuffled.x.sort(1).values, words.x.sort(1).values)
    assert torch.equal(shuffled.x == words.info.end_token, words.x == words.info.end_token)
    assert (shuffled.x != words.x).any(1).float().mean() > 0.5  # most words change
    x = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    out = shuffle_letters(x, 0, seed=1)
    assert torch.equal(out[:, 3:][0], torch.tensor([0, 0]))
    assert torch.equal(out.sort(1).values, x.sort(1).values)
