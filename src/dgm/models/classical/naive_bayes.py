"""Naive Bayes: a class variable y with conditionally independent features.

p(x, y) = p(y) Π_d p(x_d | y), with Bernoulli (binary float x), categorical (integer x in
0..V-1) or Gaussian (real x) features. Fitted in closed form by counting (maximum
likelihood with Laplace smoothing); a generative classifier p(y | x) by Bayes' rule and a
density p(x) = Σ_y p(y) p(x | y). A missing feature is integrated out exactly by dropping
its factor, so classification and likelihood work with any features missing.

References:
    Ng & Jordan 2002, On Discriminative vs. Generative Classifiers: A comparison of
    logistic regression and naive Bayes, NeurIPS.
    Murphy 2012, Machine Learning: A Probabilistic Perspective, section 3.5.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import constraints

from dgm.model import ClassConditional, Conditioning, GenerativeModel, Likelihood
from dgm.registry import register

Feature = Literal["bernoulli", "categorical", "gaussian"]


@dataclasses.dataclass
class NaiveBayesConfig(ClassConditional):
    num_classes: int = 10  # K values of the class y (the data's labels); 10 for digits
    feature: Feature = "bernoulli"  # p(x_d | y): binary x, integer x in 0..V-1, or real x
    num_categories: int = 2  # V, values 0..V-1 of a categorical feature
    alpha: float = 1.0  # Laplace smoothing: pseudo-count per value, and per class in p(y)
    # so that a constant feature keeps a finite density (scikit-learn's GaussianNB rule)
    var_smoothing: float = 1e-9  # gaussian: variances += this x the largest feature variance


@register("naive_bayes", NaiveBayesConfig)
class NaiveBayes(GenerativeModel):
    """Naive Bayes (Bernoulli, categorical or Gaussian features), fitted in closed form.

    ``log_prob(x)`` (c=None) is the density p(x) = Σ_y p(y) p(x | y); ``log_prob(x, c)`` is
    the class-conditional log p(x | y=c), as for every class-conditional dgm model (the
    joint adds ``log_prior[c]``). ``predict_proba(x)`` is p(y | x) by Bayes' rule. A NaN in
    float x marks a missing feature, and ``log_prob_observed`` takes a mask (any x): the
    missing features' factors are dropped, which integrates them out exactly. ``complete``
    draws missing features from p(x_mis | x_obs): y from its posterior given the observed
    features (or c where given), then the missing features given y. ``fit_step`` sets
    every parameter from one pass of counts over the labelled data (c = labels): repeated
    steps give the same model.

    References:
        Ng & Jordan 2002 (NeurIPS); Murphy 2012, MLAPP section 3.5.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("naive_bayes", (4,), num_classes=2).double()
        >>> x = torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1]] * 5)
        >>> y = torch.tensor([0, 1] * 5)
        >>> _ = model.fit_step([(x, y)])
        >>> model.predict_proba(x[:2]).argmax(-1).tolist()
        [0, 1]
        >>> x_missing = torch.tensor([[1.0, float("nan"), float("nan"), float("nan")]])
        >>> model.predict_proba(x_missing).argmax(-1).tolist()
        [0]
    """

    likelihood = Likelihood.EXACT

    def __init__(self, event_shape: Iterable[int], config: NaiveBayesConfig) -> None:
        super().__init__(event_shape, config)
        K, D, V = config.num_classes, self.num_dims, config.num_categories
        if K < 1:
            raise ValueError(f"num_classes must be >= 1 (the values of y), got {K}")
        if config.feature not in ("bernoulli", "categorical", "gaussian"):
            raise ValueError(
                f"feature must be bernoulli, categorical or gaussian, got {config.feature!r}"
            )
        if config.feature == "categorical" and V < 2:
            raise ValueError(f"num_categories must be >= 2 for categorical features, got {V}")
        if not config.alpha >= 0 or not config.var_smoothing >= 0:
            raise ValueError("alpha and var_smoothing must be >= 0")
        self.register_buffer("log_prior", torch.full((K,), -math.log(K)))  # log p(y), (K,)
        if config.feature == "gaussian":
            self.support = constraints.real
            self.register_buffer("means", torch.zeros(K, D))  # (K, D)
            self.register_buffer("variances", torch.ones(K, D))  # (K, D)
        else:
            V = 2 if config.feature == "bernoulli" else V
            self.support = (
                constraints.boolean
                if config.feature == "bernoulli"
                else constraints.integer_interval(0, V - 1)
            )
            # log p(x_d = v | y = k), (K, D, V)
            self.register_buffer("log_probs", torch.full((K, D, V), -math.log(V)))

    @functools.cached_property
    def conditioning(self) -> Conditioning:
        """Labels y in 0..K-1, optional: without c, log_prob is the marginal p(x)."""
        return Conditioning(num_classes=self.config.num_classes, optional=True)

    def support_hint(self) -> str:
        if self.config.feature == "bernoulli":
            return "binarize the data (--binarize static)"
        if self.config.feature == "categorical":
            return f"give integers 0..{self.config.num_categories - 1} (--num-categories)"
        return ""

    # -- densities ------------------------------------------------------------------------

    def _missing_filled(self, x: Tensor, observed: Tensor | None) -> tuple[Tensor, Tensor]:
        """Checked flat x (B, D) with missing entries set to 0, and the observed mask (B, D).
        Missing = NaN in float x, or False in ``observed`` (broadcast to x)."""
        if observed is not None:
            mask = observed.to(device=x.device, dtype=torch.bool).expand_as(x)
            x = torch.where(mask, x, torch.zeros_like(x))
        x = self.check_x(x)
        flat = x.flatten(1)  # (B, D)
        mask = torch.ones_like(flat, dtype=torch.bool) if observed is None else mask.flatten(1)
        if flat.is_floating_point():
            mask = mask & ~torch.isnan(flat)
            flat = torch.where(mask, flat, torch.zeros_like(flat))
        return flat, mask

    def feature_log_probs(self, flat: Tensor) -> Tensor:
        """log p(x_d | y = k) for every class, (B, K, D), from a flat x (B, D) in the support."""
        if self.config.feature == "gaussian":
            x = flat[:, None, :]  # (B, 1, D)
            var = self.variances  # (K, D)
            return -0.5 * ((x - self.means) ** 2 / var + var.log() + math.log(2 * math.pi))
        B, (K, D, V) = len(flat), self.log_probs.shape
        index = flat.long()[:, None, :, None].expand(B, K, D, 1)  # (B, K, D, 1)
        return self.log_probs.expand(B, K, D, V).gather(-1, index).squeeze(-1)  # (B, K, D)

    def _class_log_likelihoods(self, flat: Tensor, observed: Tensor) -> Tensor:
        """log p(x_obs | y = k), (B, K): the missing features' factors dropped."""
        terms = self.feature_log_probs(flat)  # (B, K, D)
        kept = observed[:, None, :].expand_as(terms)  # (B, K, D)
        return torch.where(kept, terms, torch.zeros_like(terms)).sum(-1)  # (B, K)

    def _from_class_terms(self, terms: Tensor, c: Tensor | None) -> Tensor:
        if c is None:
            return (terms + self.log_prior).logsumexp(-1)  # Σ_y p(y) p(x | y)
        return terms.gather(-1, c[:, None]).squeeze(-1)  # log p(x | y = c)

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x) (c=None) or log p(x | y=c) in nats, (B,); NaN features are integrated out."""
        flat, observed = self._missing_filled(x, None)
        c = self.check_c(c, len(flat))
        return self._from_class_terms(self._class_log_likelihoods(flat, observed), c)

    def log_prob_observed(
        self, x: Tensor, observed_mask: Tensor, c: Tensor | None = None
    ) -> Tensor:
        """log p(x_obs) (or log p(x_obs | y=c)) in nats, (B,): the features where
        ``observed_mask`` (x's shape, or broadcast to it) is False are integrated out."""
        flat, observed = self._missing_filled(x, observed_mask)
        c = self.check_c(c, len(flat))
        return self._from_class_terms(self._class_log_likelihoods(flat, observed), c)

    def predict_log_proba(self, x: Tensor, observed_mask: Tensor | None = None) -> Tensor:
        """log p(y | x_obs) by Bayes' rule, (B, K); NaN (or ``observed_mask`` False) marks
        a missing feature, integrated out."""
        flat, observed = self._missing_filled(x, observed_mask)
        joint = self._class_log_likelihoods(flat, observed) + self.log_prior  # (B, K)
        return joint.log_softmax(-1)

    def predict_proba(self, x: Tensor, observed_mask: Tensor | None = None) -> Tensor:
        """p(y | x_obs) by Bayes' rule, (B, K)."""
        return self.predict_log_proba(x, observed_mask).exp()

    # -- DiscreteAutoregressive (binary and categorical features) ----------------------------

    def ordering(self) -> Tensor:
        """The natural order of the flattened features (every order has closed-form
        conditionals here)."""
        return torch.arange(self.num_dims, device=self.log_prior.device)

    def conditional_logits(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x_d = v | x_<d), (B, D, V): Σ_y p(y | x_<d) p(x_d = v | y), with
        p(y | x_<d) ∝ p(y) Π_{j<d} p(x_j | y) (an exclusive running sum, so x_d moves no
        conditional at or before d); given c = y, log p(x_d = v | y) itself. For entropy
        coding of tabular data (``dgm compress``); binary and categorical features only."""
        if self.config.feature == "gaussian":
            raise ValueError(
                "naive Bayes with gaussian features models real x: it has no discrete "
                "conditionals (build it with feature='bernoulli' or 'categorical')"
            )
        flat = self.check_x(x).flatten(1)  # (B, D)
        c = self.check_c(c, len(flat))
        if c is not None:
            return self.log_probs[c]  # (B, D, V): the features are independent given y
        terms = self.feature_log_probs(flat)  # (B, K, D)
        before = F.pad(terms, (1, 0))[..., :-1].cumsum(-1)  # log p(x_<d | y), (B, K, D)
        weights = (before + self.log_prior[:, None]).log_softmax(1)  # log p(y | x_<d)
        return (weights[..., None] + self.log_probs).logsumexp(1)  # (B, D, V)

    # -- draws ----------------------------------------------------------------------------

    def _draw_features(self, y: Tensor, generator: torch.Generator | None) -> Tensor:
        """One x per class label in y (n,), flat (n, D)."""
        if self.config.feature == "gaussian":
            mean, std = self.means[y], self.variances[y].sqrt()  # (n, D)
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            return mean + std * eps
        probs = self.log_probs[y].exp()  # (n, D, V)
        n, D, V = probs.shape
        draws = torch.multinomial(probs.reshape(n * D, V), 1, generator=generator)
        draws = draws.view(n, D)  # (n, D)
        return draws.to(self.dtype) if self.config.feature == "bernoulli" else draws

    def _draw_classes(self, log_weights: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.multinomial(log_weights.softmax(-1), 1, generator=generator).squeeze(-1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Tensor:
        """n draws (n, *event_shape): y ~ p(y) (or y = c), then x_d ~ p(x_d | y)."""
        self.sample_settings(options)
        c = self.check_c(c, n)
        if c is None:
            c = self._draw_classes(self.log_prior.expand(n, -1), generator)
        return self._draw_features(c, generator).view(n, *self.event_shape)

    @torch.no_grad()
    def complete(
        self,
        x: Tensor,
        observed_mask: Tensor,
        c: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """x with the features where ``observed_mask`` is False drawn exactly from
        p(x_mis | x_obs) (or p(x_mis | y=c)): y from p(y | x_obs), then the missing
        features given y. Observed features come back unchanged."""
        flat, observed = self._missing_filled(x, observed_mask)
        c = self.check_c(c, len(flat))
        if c is None:
            posterior = self._class_log_likelihoods(flat, observed) + self.log_prior
            c = self._draw_classes(posterior, generator)
        draws = self._draw_features(c, generator).to(flat.dtype)  # (B, D)
        return torch.where(observed, flat, draws).view(x.shape)

    # -- fitting --------------------------------------------------------------------------

    @torch.no_grad()
    def fit_step(self, batches: Iterable[tuple[Tensor, Tensor | None]]) -> dict[str, Tensor]:
        """The closed-form fit from one pass over (x, labels) batches: smoothed counts for
        p(y) and p(x_d | y), or per-class means and variances; missing features (NaN) are
        left out of the counts. Returns the training NLL of the fitted model in nats per
        example: ``nll`` = −mean log p(x | y), ``label_nll`` = −mean log p(y)."""
        cfg, K, D = self.config, self.config.num_classes, self.num_dims
        acc = torch.float64
        n_k = torch.zeros(K, dtype=acc, device=self.device)
        gaussian = cfg.feature == "gaussian"
        V = 0 if gaussian else self.log_probs.shape[-1]
        shape = (K, D) if gaussian else (K, D, V)
        s0, s1, s2 = (torch.zeros(shape, dtype=acc, device=self.device) for _ in range(3))
        for x, c in batches:
            flat, observed = self._missing_filled(x, None)
            if c is None and K > 1:
                raise ValueError(
                    f"naive Bayes fits p(x, y): pass the class labels as c "
                    f"(LongTensor (batch,) in 0..{K - 1}), e.g. data with labels"
                )
            c = self.check_c(c, len(flat))
            y = torch.zeros(len(flat), dtype=torch.long, device=flat.device) if c is None else c
            Y = F.one_hot(y, K).to(acc)  # (B, K)
            n_k += Y.sum(0)
            obs = observed.to(acc)  # (B, D)
            if gaussian:
                v = flat.to(acc)
                s0 += Y.T @ obs
                s1 += Y.T @ (v * obs)
                s2 += Y.T @ (v * v * obs)
            elif cfg.feature == "bernoulli":  # counts of ones, and of observed entries
                ones, seen = Y.T @ (flat.to(acc) * obs), Y.T @ obs  # (K, D) each
                s0 += torch.stack([seen - ones, ones], -1)  # (K, D, 2)
            else:
                onehot = F.one_hot(flat, V).to(acc) * obs[..., None]  # (B, D, V)
                s0 += (Y.T @ onehot.flatten(1)).view(K, D, V)
        n = n_k.sum()
        if n == 0:
            raise ValueError("fit_step got no examples")
        prior = (n_k + cfg.alpha) / (n + K * cfg.alpha)
        self.log_prior.copy_(prior.log())
        label_ll = (n_k * prior.log()).sum()
        if gaussian:
            ll = self._fit_gaussian(s0, s1, s2)
        else:
            log_theta = ((s0 + cfg.alpha) / (s0.sum(-1, keepdim=True) + V * cfg.alpha)).log()
            self.log_probs.copy_(log_theta)
            ll = (s0 * log_theta).nan_to_num(0.0).sum()  # 0 · log 0 = 0 without smoothing
        return {"nll": -ll / n, "label_nll": -label_ll / n}

    def _fit_gaussian(self, s0: Tensor, s1: Tensor, s2: Tensor) -> Tensor:
        """Per-class means and variances from the sums (K, D); a (class, feature) without
        observations takes the feature's overall mean and variance. Returns Σ log p(x | y)."""
        n_d = s0.sum(0)  # (D,)
        overall_mean = s1.sum(0) / n_d.clamp_min(1)
        overall_var = (s2.sum(0) / n_d.clamp_min(1) - overall_mean**2).clamp_min(0)
        eps = self.config.var_smoothing * float(overall_var.max())
        seen = s0 > 0
        mean = torch.where(seen, s1 / s0.clamp_min(1), overall_mean)
        var = torch.where(seen, (s2 / s0.clamp_min(1) - mean**2).clamp_min(0), overall_var)
        var = var + eps
        if not bool((var > 0).all()):
            raise ValueError(
                "a feature has zero variance within a class: set var_smoothing > 0 "
                "(--var-smoothing 1e-9)"
            )
        self.means.copy_(mean)
        self.variances.copy_(var)
        sq = s2 - 2 * mean * s1 + s0 * mean**2  # Σ (x − μ)² per (class, feature)
        return (-0.5 * (s0 * (var.log() + math.log(2 * math.pi)) + sq / var)).sum()
