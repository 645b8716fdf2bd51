"""Hidden Markov model: K hidden states, categorical or diagonal-Gaussian emissions.

p(x_1..x_T) = Σ_z π_{z_1} b_{z_1}(x_1) Π_{t>1} A_{z_{t-1} z_t} b_{z_t}(x_t), summed over the
K^T state paths by the forward algorithm in log space (Rabiner 1989, eqs. 19-21), so
``log_prob`` is exact. Emissions b_k are categorical over tokens 0..V-1 (text: ``vocab_size``
> 0) or diagonal Gaussians over real vectors (``vocab_size`` = 0; x of event shape (T, D),
or (T,) for D = 1).

Padded text (``end_token`` >= 0, as ``words`` gives it): a sequence ends at its first end
token, which the HMM emits like any other token; the padding after it has probability 1.
So log p(x) = log P_HMM(x_1..x_L), L the position of the first end token (T if none), the
same number a model of the unpadded sequence gives, and per-token figures divide by L
(``token_counts``). The distribution stays normalised over the padded sequences: a
sequence with anything but end tokens after its first end token has probability 0.

Fitting: Baum-Welch (EM), one iteration over the whole training set per ``fit_step``
(``ClosedFormFit``), or, with ``training="gradient"``, the trainer's optimizer on −log p
(the parameters are logits, normalised by softmax in every use).

References:
    Baum, Petrie, Soules & Weiss 1970, A maximization technique occurring in the
    statistical analysis of probabilistic functions of Markov chains, Ann. Math. Statist.
    41(1).
    Rabiner 1989, A tutorial on hidden Markov models and selected applications in speech
    recognition, Proc. IEEE 77(2).
    Viterbi 1967, Error bounds for convolutional codes and an asymptotically optimum
    decoding algorithm, IEEE Trans. Inf. Theory 13(2).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.distributions import constraints

from dgm.model import GenerativeModel, Likelihood, Loss, real_token_counts
from dgm.registry import register

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclasses.dataclass
class HMMConfig:
    num_states: int = 16  # K hidden states (16: words' NLL levels off near 32 on web2)
    vocab_size: int = 0  # categorical emissions over tokens 0..V-1 (set from text); 0: Gaussian
    end_token: int = -1  # padded text: the first one ends a sequence (set from words); -1: none
    training: Literal["em", "gradient"] = "em"  # em: Baum-Welch, one pass per step; gradient: SGD
    init_seed: int = 0  # seeds the random initial parameters (and EM's data-drawn means)
    pseudo_count: float = 1e-3  # added to EM's expected counts: no zero probability on test data
    min_variance: float = 1e-3  # floor of the Gaussian emission variances (EM), data units²


@register("hmm", HMMConfig)
class HiddenMarkovModel(GenerativeModel):
    """Hidden Markov model: exact log_prob by the forward algorithm, in nats per sequence.

    State (parameters, all logits: their softmax is the distribution): ``log_initial`` (K,),
    ``log_transition`` (K, K) (row = from), and ``log_emission`` (K, V) for tokens, or
    ``means`` and ``log_scales`` (K, D) for Gaussian emissions. ``viterbi`` gives the most
    probable state path, ``posterior`` the marginals p(z_t | x) by forward-backward.
    With ``training="em"`` the parameters take no gradients and ``fit_step`` does one
    Baum-Welch iteration over all the data; with ``training="gradient"`` the model has no
    ``fit_step`` and the trainer minimises ``loss``. Gaussian means start at K data points
    (drawn by ``init_seed``) and the scales at the data's spread, on the first ``fit_step``
    or ``initialize``.

    References:
        Baum et al. 1970 (Baum-Welch); Rabiner 1989 (forward-backward, Viterbi, scaling);
        Viterbi 1967.

    Example:
        >>> import itertools, torch, dgm
        >>> model = dgm.create("hmm", (5,), num_states=3, vocab_size=4).double()
        >>> x = model.sample(200, generator=torch.Generator().manual_seed(0))
        >>> history = [float(model.fit_step([(x, None)])["log_likelihood"]) for _ in range(5)]
        >>> all(b >= a for a, b in itertools.pairwise(history))
        True
        >>> model.viterbi(x[:2])[0].shape, model.posterior(x[:2]).shape
        (torch.Size([2, 5]), torch.Size([2, 5, 3]))
    """

    likelihood = Likelihood.EXACT

    def __init__(self, event_shape: Iterable[int], config: HMMConfig) -> None:
        super().__init__(event_shape, config)
        K, V = config.num_states, config.vocab_size
        self.categorical = V > 0
        if K < 1:
            raise ValueError(f"num_states must be >= 1, got {K}")
        if config.training not in ("em", "gradient"):
            raise ValueError(f"training must be 'em' or 'gradient', got {config.training!r}")
        if not (config.pseudo_count >= 0 and config.min_variance > 0):
            raise ValueError("pseudo_count must be >= 0 and min_variance > 0")
        if self.categorical:
            if len(self.event_shape) != 1:
                raise ValueError(f"hmm over tokens models (T,), got {tuple(self.event_shape)}")
            if not -1 <= config.end_token < V:
                raise ValueError(
                    f"end_token must be a token in 0..{V - 1}, or -1 for text without "
                    f"padding; got {config.end_token}"
                )
            self.support = constraints.integer_interval(0, V - 1)
        else:
            if V < 0 or len(self.event_shape) > 2:
                raise ValueError(
                    f"Gaussian emissions model real x of shape (T, D) or (T,), got "
                    f"{tuple(self.event_shape)} (for tokens set vocab_size > 0)"
                )
            if config.end_token != -1:
                raise ValueError("end_token marks padded text: give vocab_size > 0, or -1")
        self.length = self.event_shape[0]  # T
        self.features = 1 if len(self.event_shape) == 1 else self.event_shape[1]  # D
        g = torch.Generator().manual_seed(config.init_seed)
        self.log_initial = nn.Parameter(torch.randn(K, generator=g) * 0.1)  # (K,)
        self.log_transition = nn.Parameter(torch.randn(K, K, generator=g) * 0.1)  # (K, K)
        if self.categorical:
            self.log_emission = nn.Parameter(torch.randn(K, V, generator=g) * 0.5)  # (K, V)
        else:
            D = self.features
            self.means = nn.Parameter(torch.randn(K, D, generator=g))  # (K, D)
            self.log_scales = nn.Parameter(torch.zeros(K, D))  # (K, D)
            self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        if config.training == "em":
            for p in self.parameters():
                p.requires_grad_(False)
            # the trainer fits a model in closed form when it has ``fit_step``
            # (``ClosedFormFit``); a gradient-trained HMM has none
            self.fit_step = self.baum_welch_step

    def support_hint(self) -> str:
        return f"give tokens 0..{self.config.vocab_size - 1} (--vocab-size is set from the data)"

    # -- the pieces of the forward algorithm -----------------------------------------------

    def log_emissions(self, x: Tensor) -> Tensor:
        """log b_k(x_t) (B, T, K) for checked x (B, T) tokens or (B, T[, D]) reals."""
        if self.categorical:
            return self.log_emission.log_softmax(-1).T[x]  # (B, T, K)
        flat = x.reshape(len(x), self.length, 1, self.features)  # (B, T, 1, D)
        z = (flat - self.means) / self.log_scales.exp()  # (B, T, K, D)
        return (-0.5 * z.square() - self.log_scales - HALF_LOG_2PI).sum(-1)  # (B, T, K)

    def real_positions(self, x: Tensor) -> Tensor:
        """(B, T) bool: the positions up to and including the first end token."""
        t = torch.arange(self.length, device=x.device)
        return t < real_token_counts(x, self.config.end_token)[:, None]

    def token_counts(self, x: Tensor) -> Tensor:
        """Real tokens per sequence (B,) int64 (``TokenSequence``): up to and including the
        first ``end_token``, or all T (also every time step of Gaussian sequences)."""
        return real_token_counts(self.check_x(x), self.config.end_token)

    def _inputs(self, x: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Checked x: (log emissions (B, T, K) with 0 at padding, real mask (B, T), and the
        log-probability of the padding: 0, or −inf where a token after the end is not the
        end token)."""
        x = self.check_x(x)
        self.check_c(c, len(x))
        emit = self.log_emissions(x)  # (B, T, K)
        mask = self.real_positions(x)  # (B, T)
        emit = emit.masked_fill(~mask[..., None], 0.0)
        pad = torch.zeros(len(x), dtype=emit.dtype, device=emit.device)  # (B,)
        if self.config.end_token >= 0:
            bad = (~mask & (x != self.config.end_token)).any(1)  # (B,)
            pad = pad.masked_fill(bad, -math.inf)
        return emit, mask, pad

    def _forward(self, emit: Tensor, mask: Tensor) -> Tensor:
        """log α_t(k) = log p(x_1..x_t, z_t = k) (B, T, K); at padding α stays as it was.
        Each step is logsumexp_i(log α_{t-1}(i) + log A_ij) as a matrix product of exp(log α
        − its max) with A, plus that max: no underflow however long the sequence."""
        log_a = self.log_transition.log_softmax(-1)  # (K, K)
        trans = log_a.exp()
        alpha = self.log_initial.log_softmax(-1) + emit[:, 0]  # (B, K)
        out = [alpha]
        for t in range(1, emit.shape[1]):
            top = alpha.amax(-1, keepdim=True)  # (B, 1)
            step = ((alpha - top).exp() @ trans).log() + top + emit[:, t]  # (B, K)
            alpha = torch.where(mask[:, t, None], step, alpha)
            out.append(alpha)
        return torch.stack(out, 1)  # (B, T, K)

    def _backward(self, emit: Tensor, mask: Tensor) -> Tensor:
        """log β_t(k) = log p(x_{t+1}..x_L | z_t = k) (B, T, K); 0 from the last real
        position on."""
        trans = self.log_transition.log_softmax(-1).exp()  # (K, K)
        beta = emit.new_zeros(emit.shape[0], emit.shape[2])  # (B, K)
        out = [beta]
        for t in range(emit.shape[1] - 2, -1, -1):
            nxt = emit[:, t + 1] + beta  # (B, K)
            top = nxt.amax(-1, keepdim=True)  # (B, 1)
            step = ((nxt - top).exp() @ trans.T).log() + top  # (B, K)
            beta = torch.where(mask[:, t + 1, None], step, beta)
            out.append(beta)
        return torch.stack(out[::-1], 1)  # (B, T, K)

    # -- the contract ----------------------------------------------------------------------

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x) in nats (B,), exact: the forward algorithm summed over the last real
        position (padding after the end token has probability 1)."""
        emit, mask, pad = self._inputs(x, c)
        return self._forward(emit, mask)[:, -1].logsumexp(-1) + pad

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        """−log p(x) averaged over the batch (nats per sequence); metrics ``nll`` and
        ``nats_per_token`` (the batch's NLL over its real tokens)."""
        self._check_phase(phase)
        lp = self.log_prob(x, c)  # (B,)
        nll = -lp.mean()
        per_token = -lp.sum() / self.token_counts(x).sum()
        return Loss(nll, {"nll": nll.detach(), "nats_per_token": per_token.detach()})

    def sample(
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Tensor:
        """n sequences (n, *event_shape): z_1 ~ π, x_t ~ b_{z_t}, z_{t+1} ~ A[z_t]; after a
        first end token the rest is padding (the end token)."""
        self.sample_settings(options)  # no options: refuses any
        self.check_c(c, n)
        with torch.no_grad():
            trans = self.log_transition.log_softmax(-1).exp()  # (K, K)
            z = torch.multinomial(
                self.log_initial.softmax(-1).expand(n, -1), 1, generator=generator
            )[:, 0]  # (n,)
            steps = []
            for t in range(self.length):
                if t > 0:
                    z = torch.multinomial(trans[z], 1, generator=generator)[:, 0]  # (n,)
                steps.append(self._emit(z, generator))
            x = torch.stack(steps, 1)  # (n, T) or (n, T, D)
        if self.categorical:
            end = self.config.end_token
            if end >= 0:
                x = torch.where(self.real_positions(x), x, end)
            return x
        return x.reshape(n, *self.event_shape)

    def _emit(self, z: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.categorical:
            probs = self.log_emission.softmax(-1)[z]  # (n, V)
            return torch.multinomial(probs, 1, generator=generator)[:, 0]  # (n,)
        eps = torch.randn(len(z), self.features, generator=generator, device=z.device)
        return self.means[z] + self.log_scales[z].exp() * eps.to(self.means.dtype)  # (n, D)

    # -- decoding ----------------------------------------------------------------------------

    def posterior(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """p(z_t = k | x) (B, T, K) by forward-backward; rows of padding positions are 0."""
        emit, mask, _ = self._inputs(x, c)
        alpha, beta = self._forward(emit, mask), self._backward(emit, mask)
        log_px = alpha[:, -1].logsumexp(-1)  # (B,)
        gamma = (alpha + beta - log_px[:, None, None]).exp()  # (B, T, K)
        return gamma * mask[..., None]

    def viterbi(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The most probable state path argmax_z p(z, x) (B, T) int64, −1 at padding, and
        its log p(z, x) in nats (B,) (Viterbi 1967; Rabiner 1989 eqs. 30-35)."""
        emit, mask, pad = self._inputs(x, c)
        B, T, K = emit.shape
        log_a = self.log_transition.log_softmax(-1)  # (K, K)
        delta = self.log_initial.log_softmax(-1) + emit[:, 0]  # (B, K)
        keep = torch.arange(K, device=emit.device).expand(B, K)  # padding: stay put
        pointers = []
        for t in range(1, T):
            best, arg = (delta[:, :, None] + log_a).max(1)  # (B, K): over the previous state
            delta = torch.where(mask[:, t, None], best + emit[:, t], delta)
            pointers.append(torch.where(mask[:, t, None], arg, keep))  # (B, K)
        score, state = delta.max(-1)  # (B,)
        path = [state]
        for arg in reversed(pointers):  # pointers[t - 1] leads from z_t back to z_{t-1}
            state = arg.gather(1, state[:, None])[:, 0]
            path.append(state)
        path = torch.stack(path[::-1], 1)  # (B, T)
        return path.masked_fill(~mask, -1), score + pad

    # -- fitting -------------------------------------------------------------------------------

    def initialize(self, x: Tensor, c: Tensor | None = None) -> None:
        """Gaussian emissions: means at K data vectors drawn by ``init_seed``, scales at the
        data's standard deviation per dimension (once; a fitted model is left alone)."""
        if self.categorical or bool(self.initialized):
            return
        x = self.check_x(x)
        flat = x.reshape(-1, self.features)  # (B T, D)
        g = torch.Generator().manual_seed(self.config.init_seed)
        pick = torch.randperm(len(flat), generator=g)[: self.config.num_states]
        pick = pick.repeat(self.config.num_states // len(pick) + 1)[: self.config.num_states]
        with torch.no_grad():
            self.means.copy_(flat[pick.to(flat.device)])
            spread = flat.std(0) if len(flat) > 1 else torch.ones_like(flat[0])
            self.log_scales.copy_(spread.clamp_min(self.config.min_variance**0.5).log())
        self.initialized.fill_(True)

    def baum_welch_step(self, batches: Iterable[tuple[Tensor, Tensor | None]]) -> dict[str, Tensor]:
        """One Baum-Welch (EM) iteration over ``batches``, all the data once (this is
        ``fit_step`` when ``training="em"``). Returns ``log_likelihood``, the mean log p(x) of
        the parameters before the update (nats per sequence, never decreasing from step to
        step), and ``nats_per_token``."""
        if not self.categorical and not bool(self.initialized):
            batches = list(batches)
            self.initialize(torch.cat([x for x, _ in batches]))
        stats: list[Tensor] | None = None
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count, tokens = 0, 0
        with torch.no_grad():
            for x, c in batches:
                part, log_px, n_tokens = self._statistics(x, c)
                stats = part if stats is None else [a + b for a, b in zip(stats, part, strict=True)]
                total += log_px.double().sum()
                count, tokens = count + len(log_px), tokens + n_tokens
            if stats is None:
                raise ValueError("fit_step got no data")
            if not bool(torch.isfinite(total)):
                raise ValueError(
                    "a training sequence has probability 0 (tokens after its end token that "
                    "are not the end token, or a token the model cannot emit): fix the data"
                )
            self._m_step(*stats)
        mean = (total / count).to(self.dtype)
        return {"log_likelihood": mean, "nats_per_token": (-total / tokens).to(self.dtype)}

    def _statistics(self, x: Tensor, c: Tensor | None) -> tuple[list[Tensor], Tensor, int]:
        """Expected sufficient statistics of one batch: Σ p(z_1 | x) (K,), Σ_t p(z_{t-1}, z_t
        | x) (K, K), and Σ_t p(z_t | x) [x_t = v] (K, V) or Σ_t p(z_t | x) (K,), Σ γ x and
        Σ γ x² (K, D); with log p(x) (B,) and the number of real tokens."""
        emit, mask, pad = self._inputs(x, c)
        alpha, beta = self._forward(emit, mask), self._backward(emit, mask)  # (B, T, K)
        log_px = alpha[:, -1].logsumexp(-1)  # (B,)
        gamma = (alpha + beta - log_px[:, None, None]).exp() * mask[..., None]  # (B, T, K)
        # ξ_t(i, j) = α_{t-1}(i) A_ij b_j(x_t) β_t(j) / p(x), summed over b and real t > 1
        left = alpha[:, :-1]  # (B, T-1, K)
        right = emit[:, 1:] + beta[:, 1:]  # (B, T-1, K)
        top_l, top_r = left.amax(-1, keepdim=True), right.amax(-1, keepdim=True)  # (B, T-1, 1)
        weight = (top_l + top_r - log_px[:, None, None]).exp() * mask[:, 1:, None]  # (B, T-1, 1)
        u, v = (left - top_l).exp() * weight, (right - top_r).exp()  # (B, T-1, K)
        trans = self.log_transition.log_softmax(-1).exp()  # (K, K)
        xi = torch.einsum("bti,btj->ij", u, v) * trans  # (K, K)
        first = gamma[:, 0].sum(0)  # (K,)
        if self.categorical:
            X = self.check_x(x)
            counts = gamma.new_zeros(self.config.vocab_size, gamma.shape[-1])  # (V, K)
            emission = [counts.index_add_(0, X.flatten(), gamma.flatten(0, 1)).T]  # (K, V)
        else:
            X = self.check_x(x).reshape(len(x), self.length, self.features)  # (B, T, D)
            g = gamma.flatten(0, 1)  # (B T, K)
            flat = X.flatten(0, 1)  # (B T, D)
            emission = [g.sum(0), g.T @ flat, g.T @ flat.square()]  # (K,), (K, D), (K, D)
        stats = [first, xi, *emission]
        n_tokens = int(mask.sum())
        return [s.double() for s in stats], log_px + pad, n_tokens

    def _m_step(self, first: Tensor, xi: Tensor, *emission: Tensor) -> None:
        """Parameters from expected counts (Rabiner 1989 eqs. 40a-c): each distribution is
        its counts (+ ``pseudo_count`` for transitions and tokens) normalised; a state never
        visited keeps its old row."""
        prior = self.config.pseudo_count
        self.log_initial.copy_(_normalised_log(first, self.log_initial))
        self.log_transition.copy_(_normalised_log(xi + prior, self.log_transition))
        if self.categorical:
            (counts,) = emission
            self.log_emission.copy_(_normalised_log(counts + prior, self.log_emission))
            return
        weight, s1, s2 = emission  # (K,), (K, D), (K, D)
        seen = weight > 1e-10  # (K,)
        mean = s1 / weight.clamp_min(1e-10)[:, None]  # (K, D)
        var = s2 / weight.clamp_min(1e-10)[:, None] - mean.square()
        var = var.clamp_min(self.config.min_variance)
        self.means.copy_(torch.where(seen[:, None], mean.to(self.means), self.means))
        log_scale = (0.5 * var.log()).to(self.log_scales)
        self.log_scales.copy_(torch.where(seen[:, None], log_scale, self.log_scales))

    def fit(self, x: Tensor, steps: int = 20) -> list[float]:
        """``steps`` Baum-Welch iterations on x (N, *event_shape): the mean log-likelihood
        before each, in nats per sequence."""
        return [float(self.baum_welch_step([(x, None)])["log_likelihood"]) for _ in range(steps)]


def _normalised_log(counts: Tensor, old: Tensor) -> Tensor:
    """log(counts / row sums) in ``old``'s dtype, a zero probability floored at the dtype's
    smallest normal number (a finite logit: the trainer refuses infinite weights); rows
    whose counts sum to 0 keep ``old``'s distribution (as normalised logits)."""
    total = counts.sum(-1, keepdim=True)
    tiny = torch.finfo(old.dtype).tiny
    new = (counts / total.clamp_min(1e-300)).to(old).clamp_min(tiny).log()
    return torch.where(total.to(old.device) > 0, new, old.log_softmax(-1))
