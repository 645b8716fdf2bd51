"""The hidden Markov model against its theory, in float64: normalisation by enumeration,
the forward algorithm, Viterbi and forward-backward against brute force over every state
path, Baum-Welch's monotone likelihood and its M-step against brute-force expected counts,
hmmlearn's log-likelihood, and padded text."""

import itertools
import math

import pytest
import torch

import dgm
from dgm.model import ClosedFormFit, TokenSequence


def make(shape, **config):
    return dgm.create("hmm", shape, **config).double()


def randomise(model, seed=0):
    """Random, far-from-uniform parameters (the default start is near uniform)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 1.5)
    return model


def params(model):
    """(log π (K,), log A (K, K), a function t -> log b(x_t) (K,)) of one unpadded sequence."""
    log_pi = model.log_initial.log_softmax(-1)
    log_a = model.log_transition.log_softmax(-1)
    return log_pi, log_a


def joint_by_path(model, seq):
    """log p(x, z) for every state path z of the unpadded sequence ``seq`` (L,) or (L, D):
    (paths (K^L, L), log p (K^L,))."""
    log_pi, log_a = params(model)
    K, L = model.config.num_states, len(seq)
    emit = model.log_emissions(seq[None].reshape(1, L, *model.event_shape[1:]))[0]  # (L, K)
    paths = torch.tensor(list(itertools.product(range(K), repeat=L)))  # (K^L, L)
    lp = log_pi[paths[:, 0]] + emit[0, paths[:, 0]]
    for t in range(1, L):
        lp = lp + log_a[paths[:, t - 1], paths[:, t]] + emit[t, paths[:, t]]
    return paths, lp


def single(model, length):
    """The same HMM (shared parameters) over sequences of ``length`` steps."""
    other = dgm.create("hmm", (length, *model.event_shape[1:]), **vars(model.config)).double()
    other.load_state_dict(model.state_dict())
    return other


# -- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize("T", [1, 2])
def test_probabilities_of_every_sequence_sum_to_one(T):
    model = randomise(make((T,), num_states=3, vocab_size=3))
    every = torch.tensor(list(itertools.product(range(3), repeat=T)))  # (V^T, T)
    total = model.log_prob(every).logsumexp(0)
    torch.testing.assert_close(total, torch.zeros((), dtype=torch.float64))


def test_padded_sequences_sum_to_one_and_bad_padding_has_probability_zero():
    model = randomise(make((3,), num_states=2, vocab_size=3, end_token=2))
    every = torch.tensor(list(itertools.product(range(3), repeat=3)))  # (27, 3)
    lp = model.log_prob(every)
    torch.testing.assert_close(lp.logsumexp(0), torch.zeros((), dtype=torch.float64))
    bad = torch.tensor([[2, 0, 2], [1, 2, 1]])  # a token after the end that is not the end
    assert torch.isneginf(model.log_prob(bad)).all()


def test_gaussian_density_of_one_step_integrates_to_one():
    model = randomise(make((1,), num_states=3))
    grid = torch.linspace(-40, 40, 40_001, dtype=torch.float64)
    density = model.log_prob(grid[:, None]).exp()
    torch.testing.assert_close(
        torch.trapezoid(density, grid), torch.ones((), dtype=torch.float64), atol=1e-6, rtol=0
    )


# -- forward, Viterbi, forward-backward against brute force ---------------------------------


CASES = [
    ((4,), {"num_states": 3, "vocab_size": 4}),
    ((4, 2), {"num_states": 3}),
    ((5,), {"num_states": 2, "vocab_size": 3}),
]


@pytest.mark.parametrize("shape, config", CASES)
def test_forward_equals_the_sum_over_every_state_path(shape, config):
    model = randomise(make(shape, **config), seed=1)
    x = model.sample(6, generator=torch.Generator().manual_seed(2))
    expected = torch.stack([joint_by_path(model, s)[1].logsumexp(0) for s in x])
    torch.testing.assert_close(model.log_prob(x), expected)


@pytest.mark.parametrize("shape, config", CASES)
def test_viterbi_path_is_the_argmax_by_enumeration(shape, config):
    model = randomise(make(shape, **config), seed=3)
    x = model.sample(8, generator=torch.Generator().manual_seed(4))
    path, score = model.viterbi(x)
    for i, s in enumerate(x):
        paths, lp = joint_by_path(model, s)
        assert torch.equal(path[i], paths[lp.argmax()])
        torch.testing.assert_close(score[i], lp.max())


@pytest.mark.parametrize("shape, config", CASES)
def test_posterior_marginals_equal_brute_force(shape, config):
    model = randomise(make(shape, **config), seed=5)
    x = model.sample(5, generator=torch.Generator().manual_seed(6))
    gamma = model.posterior(x)  # (B, T, K)
    K = model.config.num_states
    for i, s in enumerate(x):
        paths, lp = joint_by_path(model, s)
        w = lp.softmax(0)  # p(z | x)
        expected = torch.stack(
            [torch.zeros(K, dtype=w.dtype).index_add(0, paths[:, t], w) for t in range(len(s))]
        )
        torch.testing.assert_close(gamma[i], expected)


# -- hmmlearn ----------------------------------------------------------------------------------

# Computed once with hmmlearn 0.3.3 (numpy float64), by this script:
#   g = torch.Generator().manual_seed(0); K, V, D = 3, 4, 2
#   init, trans, emis = (torch.randn(*s, generator=g, dtype=torch.float64)
#                        for s in [(K,), (K, K), (K, V)])
#   means = torch.randn(K, D, generator=g, dtype=torch.float64)
#   log_scales = 0.3 * torch.randn(K, D, generator=g, dtype=torch.float64)
#   tokens = torch.randint(V, (600,), generator=g)
#   reals = 2 * torch.randn(200, D, generator=g, dtype=torch.float64)
#   m = hmm.CategoricalHMM(n_components=K, n_features=V, init_params="", params="")
#   m.startprob_, m.transmat_, m.emissionprob_ = (init.softmax(0).numpy(),
#       trans.softmax(1).numpy(), emis.softmax(1).numpy())
#   m.score(tokens.numpy()[:, None]), m.score(tokens.numpy()[:7, None])
#   m = hmm.GaussianHMM(n_components=K, covariance_type="diag", init_params="", params="")
#   m.startprob_, m.transmat_ = init.softmax(0).numpy(), trans.softmax(1).numpy()
#   m.means_, m.covars_ = means.numpy(), (2 * log_scales).exp().numpy()
#   m.score(reals.numpy()), m.score(reals.numpy()[:5])
# The long sequences (600 tokens, 200 vectors) have p(x) far below float64's smallest
# number: only a forward pass normalised at every step reaches them.
HMMLEARN_TOKENS = {600: -953.2389257470229, 7: -11.513838173724652}
HMMLEARN_REALS = {200: -1109.6015422351077, 5: -28.921620273126113}


def test_log_likelihood_equals_hmmlearns():
    g = torch.Generator().manual_seed(0)
    K, V, D = 3, 4, 2
    init, trans, emis = (
        torch.randn(*s, generator=g, dtype=torch.float64) for s in [(K,), (K, K), (K, V)]
    )
    means = torch.randn(K, D, generator=g, dtype=torch.float64)
    log_scales = 0.3 * torch.randn(K, D, generator=g, dtype=torch.float64)
    tokens = torch.randint(V, (600,), generator=g)
    reals = 2 * torch.randn(200, D, generator=g, dtype=torch.float64)
    for T, expected in HMMLEARN_TOKENS.items():
        model = make((T,), num_states=K, vocab_size=V)
        with torch.no_grad():
            model.log_initial.copy_(init), model.log_transition.copy_(trans)
            model.log_emission.copy_(emis)
        assert abs(model.log_prob(tokens[None, :T]).item() - expected) < 1e-6
    for T, expected in HMMLEARN_REALS.items():
        model = make((T, D), num_states=K)
        with torch.no_grad():
            model.log_initial.copy_(init), model.log_transition.copy_(trans)
            model.means.copy_(means), model.log_scales.copy_(log_scales)
        assert abs(model.log_prob(reals[None, :T]).item() - expected) < 1e-6


# -- padded text ---------------------------------------------------------------------------


WORDS = [[0, 1, 3], [2, 2, 0, 1, 3], [1, 3], [0, 0, 0, 0, 0, 2, 1, 3]]  # 3 = end token


def test_a_padded_batch_scores_each_sequence_as_its_unpadded_self():
    model = randomise(make((8,), num_states=3, vocab_size=4, end_token=3), seed=7)
    batch = torch.tensor([w + [3] * (8 - len(w)) for w in WORDS])  # (4, 8)
    lp = model.log_prob(batch)
    gamma = model.posterior(batch)
    path, score = model.viterbi(batch)
    assert torch.equal(model.token_counts(batch), torch.tensor([len(w) for w in WORDS]))
    for i, w in enumerate(WORDS):
        alone = single(model, len(w))
        x = torch.tensor([w])
        torch.testing.assert_close(lp[i], alone.log_prob(x)[0])
        torch.testing.assert_close(gamma[i, : len(w)], alone.posterior(x)[0])
        assert (gamma[i, len(w) :] == 0).all() and (path[i, len(w) :] == -1).all()
        p, s = alone.viterbi(x)
        assert torch.equal(path[i, : len(w)], p[0])
        torch.testing.assert_close(score[i], s[0])
    assert isinstance(model, TokenSequence)


def test_viterbi_does_not_walk_through_the_padding():
    """A chain that prefers to move on (z → z + 1 mod 3): the best path of "0 1 2 <end>"
    ends in some state; padding after it must not move that state along the chain (the
    score alone would not tell, as padding adds nothing to it)."""
    model = randomise(make((6,), num_states=3, vocab_size=4, end_token=3), seed=7)
    with torch.no_grad():
        model.log_transition.copy_(3 * torch.tensor([[0, 1, 0], [0, 0, 1], [1, 0, 0]]))
    path, score = model.viterbi(torch.tensor([[0, 1, 2, 3, 3, 3]]))
    alone, x = single(model, 4), torch.tensor([[0, 1, 2, 3]])
    paths, lp = joint_by_path(alone, x[0])
    assert torch.equal(path[0, :4], paths[lp.argmax()]) and (path[0, 4:] == -1).all()
    torch.testing.assert_close(score[0], lp.max())


def test_samples_are_padded_after_the_first_end_token_and_follow_log_prob():
    model = randomise(make((3,), num_states=2, vocab_size=3, end_token=2), seed=8)
    n = 20_000
    x = model.sample(n, generator=torch.Generator().manual_seed(9))
    counts = model.token_counts(x)
    assert (x[torch.arange(3) >= counts[:, None]] == 2).all()
    every = torch.tensor(list(itertools.product(range(3), repeat=3)))
    probs = model.log_prob(every).exp()
    index = (x * torch.tensor([9, 3, 1])).sum(1)
    freq = torch.bincount(index, minlength=27).double() / n
    se = (probs * (1 - probs) / n).sqrt()
    assert ((freq - probs).abs() <= 5 * se + 1e-12).all()


# -- Baum-Welch -------------------------------------------------------------------------------


@pytest.mark.parametrize("init_seed", [0, 1, 2])
@pytest.mark.parametrize("shape, config", [((6,), {"vocab_size": 5}), ((6, 2), {})])
def test_baum_welch_never_decreases_the_likelihood(init_seed, shape, config):
    truth = randomise(make(shape, num_states=3, **config), seed=10)
    x = truth.sample(300, generator=torch.Generator().manual_seed(11))
    model = make(shape, num_states=4, init_seed=init_seed, **config)
    randomise(model, seed=init_seed + 20)
    history = model.fit(x, steps=15)
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(history)), history
    assert history[-1] > history[0] + 0.1  # it learns, not only stays put


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_one_em_step_is_the_m_step_of_brute_force_expected_counts(p):
    """Rabiner's eqs. 40a-c from p(z | x) by enumeration: the new π, A and b, with the
    pseudo-count p added to the transition and token counts (0 hides a count dropped)."""
    model = randomise(make((6,), num_states=2, vocab_size=4, end_token=3, pseudo_count=p), 12)
    x = torch.tensor([w[:6] + [3] * (6 - len(w[:6])) for w in WORDS[:3]] + [[0, 1, 2, 0, 1, 2]])
    K, V = 2, 4
    first, trans, emis = torch.zeros(K), torch.zeros(K, K), torch.zeros(K, V)
    first, trans, emis = first.double(), trans.double(), emis.double()
    for s, L in zip(x, model.token_counts(x), strict=True):
        seq = s[:L]
        paths, lp = joint_by_path(model, seq)
        w = lp.softmax(0)  # (K^L,)
        first.index_add_(0, paths[:, 0], w)
        for t in range(L):
            emis.index_put_((paths[:, t], seq[t].expand(len(w))), w, accumulate=True)
            if t > 0:
                trans.index_put_((paths[:, t - 1], paths[:, t]), w, accumulate=True)
    model.fit_step([(x[:2], None), (x[2:], None)])  # two batches: one pass over all
    torch.testing.assert_close(model.log_initial.exp(), first / first.sum())
    trans, emis = trans + p, emis + p
    torch.testing.assert_close(model.log_transition.exp(), trans / trans.sum(1, keepdim=True))
    torch.testing.assert_close(model.log_emission.exp(), emis / emis.sum(1, keepdim=True))


def test_a_probability_em_sets_to_zero_stays_a_finite_logit():
    model = make((3,), num_states=2, vocab_size=4, pseudo_count=0.0)
    model.fit_step([(torch.tensor([[0, 1, 0], [1, 0, 1]]), None)])  # tokens 2, 3: no count
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert (model.log_emission.exp()[:, 2:] < 1e-300).all()


def test_em_recovers_a_gaussian_hmm():
    truth = make((30, 1), num_states=2)
    with torch.no_grad():
        truth.means.copy_(torch.tensor([[-3.0], [3.0]]))
        truth.log_scales.zero_()
        truth.log_transition.copy_(torch.tensor([[0.9, 0.1], [0.2, 0.8]]).log())
    x = truth.sample(400, generator=torch.Generator().manual_seed(13))
    model = make((30, 1), num_states=2)
    model.fit(x, steps=30)
    order = model.means[:, 0].argsort()
    torch.testing.assert_close(model.means[order, 0], truth.means[:, 0], atol=0.05, rtol=0)
    A = model.log_transition.exp()[order][:, order]
    torch.testing.assert_close(A, truth.log_transition.exp(), atol=0.03, rtol=0)


# -- gradient training, options, errors -------------------------------------------------------


def test_gradient_training_is_an_option():
    em = make((5,), num_states=3, vocab_size=4)
    sgd = make((5,), num_states=3, vocab_size=4, training="gradient")
    assert isinstance(em, ClosedFormFit) and not isinstance(sgd, ClosedFormFit)
    assert not any(p.requires_grad for p in em.parameters())
    x = randomise(make((5,), num_states=3, vocab_size=4), seed=14).sample(
        500, generator=torch.Generator().manual_seed(15)
    )
    opt = torch.optim.Adam(sgd.parameters(), lr=0.05)
    before = sgd.loss(x).value.item()
    for _ in range(100):
        opt.zero_grad()
        sgd.loss(x).value.backward()
        opt.step()
    assert sgd.loss(x).value.item() < before - 0.1


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="give vocab_size > 0"):
        dgm.create("hmm", (4, 2), end_token=1)
    with pytest.raises(ValueError, match="training must be"):
        dgm.create("hmm", (4,), vocab_size=3, training="sgd")
    with pytest.raises(ValueError, match="num_states must be"):
        dgm.create("hmm", (4,), vocab_size=3, num_states=0)
    model = make((3,), num_states=2, vocab_size=3, end_token=2)
    with pytest.raises(ValueError, match="probability 0"):
        model.fit_step([(torch.tensor([[2, 0, 2]]), None)])
    assert math.isinf(-model.log_prob(torch.tensor([[2, 0, 2]])).item())
