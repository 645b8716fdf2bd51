"""The contract every dgm model honours.

A generative model is a distribution p(x), or p(x | c). One trainer, one evaluator and
one set of task tools serve every family because every model speaks through four
methods: ``loss`` (what to minimise, per training phase), ``log_prob`` (nats per
example), ``sample`` and ``param_groups`` (which parameters each phase updates).
What ``log_prob`` means is stated by ``likelihood``; optional abilities are small
protocols (``Encodable``, ``ImportanceWeighted``, ``Completable``, ...) that tools check for,
never model names.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import itertools
import math
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, constraints


class Likelihood(enum.Enum):
    """What ``log_prob`` returns."""

    EXACT = "exact"  # log p(x) itself (autoregressive models, flows, classical models)
    LOWER_BOUND = "lower_bound"  # a stochastic lower bound, the ELBO (latent-variable models)
    # a continuous density on dequantized integer levels 0..L-1: log p((x + u)/L) − D ln L,
    # u ~ q(u | x), a stochastic lower bound on log P(x) of the discrete x (flows on images)
    DEQUANTIZED = "dequantized"
    NONE = "none"  # no likelihood (GANs): log_prob raises


class Loss(NamedTuple):
    """A scalar to minimise and detached per-batch metrics to log (means over the batch)."""

    value: Tensor
    metrics: dict[str, Tensor]


@dataclasses.dataclass(frozen=True)
class Conditioning:
    """What the conditioning argument ``c`` of a model is.

    Nothing (an unconditional model), ``num_classes`` labels (c: LongTensor (batch,)), or a
    context tensor of shape (batch, *context_shape): floats (an image, a feature vector)
    or, with ``context_vocab`` > 0, integer tokens in 0..context_vocab-1 (a prompt).
    ``optional`` marks a conditional model that also accepts ``c=None`` (it was trained
    with condition dropout, for classifier-free guidance).

    Example:
        >>> Conditioning(num_classes=10).kind, Conditioning(context_shape=(1, 7, 7)).kind
        ('classes', 'context')
    """

    num_classes: int = 0
    context_shape: tuple[int, ...] = ()
    context_vocab: int = 0
    optional: bool = False

    def __post_init__(self) -> None:
        if self.num_classes < 0 or self.context_vocab < 0:
            raise ValueError("num_classes and context_vocab must be >= 0")
        if self.num_classes > 0 and self.context_shape:
            raise ValueError("a model conditions on classes or on a context tensor, not both")
        if self.context_vocab > 0 and not self.context_shape:
            raise ValueError("context_vocab needs a context_shape (the shape of one c)")
        if any(d <= 0 for d in self.context_shape):
            raise ValueError(f"context_shape must be positive, got {self.context_shape}")

    @property
    def kind(self) -> str:
        """ "none", "classes" or "context"."""
        if self.num_classes > 0:
            return "classes"
        return "context" if self.context_shape else "none"

    def pick(self, y: Tensor | None, context: Tensor | None) -> Tensor | None:
        """The c a batch (x, y, context) gives this model: the labels, the context or None."""
        if self.kind == "classes":
            return y
        if self.kind == "context":
            if context is None:
                raise ValueError(
                    f"the model conditions on a context of shape {self.context_shape} but the "
                    "data carry none (e.g. --condition lowres for image data)"
                )
            return context
        return None

    def describe(self) -> str:
        """c in words, for error messages."""
        if self.kind == "classes":
            return f"a LongTensor of labels in 0..{self.num_classes - 1}, shape (batch,)"
        if self.kind == "context":
            dims = ", ".join(map(str, self.context_shape))
            what = (
                f"integer tokens in 0..{self.context_vocab - 1}" if self.context_vocab else "floats"
            )
            return f"a context tensor of {what}, shape (batch, {dims})"
        return "None"


# -- the conditioning fields a model config declares by including these mixins ----------


@dataclasses.dataclass
class ClassConditional:
    """Config mixin: the model may condition on a class label (c: LongTensor (batch,))."""

    num_classes: int = 0  # > 0: p(x | class) over this many classes; 0: no class label


@dataclasses.dataclass
class ContextConditional:
    """Config mixin: the model may condition on a context tensor c of a stated shape."""

    context_shape: tuple[int, ...] = ()  # shape of one context c (set from the data's context)


@dataclasses.dataclass
class TextContext(ContextConditional):
    """Config mixin: the context may be a text of integer tokens (a prompt or caption)."""

    context_vocab: int = 0  # 0: the context is floats; V > 0: a text of tokens 0..V-1 (0: padding)


@dataclasses.dataclass
class ConditionDropout:
    """Config mixin: train without c on a share of examples, so c=None is allowed
    (classifier-free guidance)."""

    condition_dropout: float = 0.0  # share of training examples without c; > 0 allows c=None


def conditioning_of(config: object) -> Conditioning:
    """What c is for a model built from ``config``: read from the conditioning mixins it
    includes (``ClassConditional``, ``ContextConditional``, ``TextContext``,
    ``ConditionDropout``); a config with none of them is unconditional.

    Example:
        >>> @dataclasses.dataclass
        ... class Config(ClassConditional):
        ...     width: int = 8
        >>> conditioning_of(Config(num_classes=10)).kind, conditioning_of(Config()).kind
        ('classes', 'none')
    """
    dropout = config.condition_dropout if isinstance(config, ConditionDropout) else 0.0
    return Conditioning(
        num_classes=config.num_classes if isinstance(config, ClassConditional) else 0,
        context_shape=tuple(config.context_shape) if isinstance(config, ContextConditional) else (),
        context_vocab=config.context_vocab if isinstance(config, TextContext) else 0,
        optional=dropout > 0,
    )


def is_integer_support(support: constraints.Constraint) -> bool:
    """True for supports of integers (categories, tokens, 8-bit levels): x is then an
    integer tensor. Binary {0, 1} data stay floats (Bernoulli models, as torch's)."""
    return bool(support.is_discrete) and support is not constraints.boolean


class GenerativeModel(nn.Module):
    """Base class of every model: a distribution p(x) or p(x | c) over ``event_shape``.

    Subclasses set ``likelihood``, ``support`` (a ``torch.distributions.constraints``
    object: where x lives) and implement ``log_prob`` and ``sample``; ``loss`` defaults to
    the mean negative ``log_prob``. What c is comes from ``conditioning``, by default read
    from the conditioning mixins the config includes (``ClassConditional``,
    ``ContextConditional``, ``TextContext``, ``ConditionDropout``; ``conditioning_of``).
    x is a float tensor, or an integer tensor where the support is a set of integers
    (tokens, categories, 8-bit levels).

    The trainer sets ``training_step`` (updates done so far) before each step, so schedules
    inside a model (KL warm-up, noise levels) follow the run and survive a resume.
    """

    likelihood: Likelihood = Likelihood.EXACT
    support: constraints.Constraint = constraints.real
    phases: tuple[str, ...] = ("main",)  # the trainer calls loss(..., phase=p) for each, in order
    sample_options: type | None = None  # a dataclass of sample() keyword options (CLI flags)
    data_sized_buffers: tuple[str, ...] = ()  # buffers whose shape comes from the data (KDE)

    def __init__(self, event_shape: Iterable[int], config: Any) -> None:
        super().__init__()
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}")
        self.event_shape = torch.Size(event_shape)
        if len(self.event_shape) == 0 or any(d <= 0 for d in self.event_shape):
            raise ValueError(
                f"event_shape must be non-empty and positive, got {tuple(event_shape)}"
            )
        self.config = config
        self.training_step = 0  # set by the trainer before each step
        self.check_values = True  # False skips the support check (data validated up front)

    # -- the contract ---------------------------------------------------------------------

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        """Objective for one training phase, averaged over the batch (nats per example)."""
        self._check_phase(phase)
        nll = -self.log_prob(x, c).mean()
        return Loss(nll, {"nll": nll.detach()})

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x) (or its lower bound, see ``likelihood``) in nats, shape (batch,)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no likelihood (likelihood = {self.likelihood.value})"
        )

    def sample(
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Tensor:
        """n draws from the model, shape (n, *event_shape), on the model's device; options
        are the fields of ``sample_options``."""
        raise NotImplementedError

    def working_memory_bytes(self, batch_size: int) -> int:
        """Bytes a training step needs beyond parameters, optimizer state and module
        outputs (e.g. a closed-form fit's count tables), for the memory check before a run
        (``dgm.train.memory``); 0 unless a model says otherwise."""
        return 0

    def param_groups(self) -> dict[str, list[nn.Parameter] | list[dict[str, Any]]]:
        """Parameters updated by each phase; one optimizer is built per key. A phase may
        give torch-style param-group dicts (``{"params": [...], "lr": 2e-4, "betas": (0.5,
        0.999)}``) whose settings override the trainer's for that phase."""
        return {"main": [p for p in self.parameters() if p.requires_grad]}

    def initialize(self, x: Tensor, c: Tensor | None = None) -> None:
        """Data-dependent initialisation (Glow's ActNorm) from one batch: the trainer calls
        it once, before the first step and before the optimizers and the EMA take the
        weights (forking the RNG, so training draws are unchanged). Parts already
        initialised (a resumed or reloaded model) must be left as they are. Default: nothing."""

    def validation_log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """The score the trainer's periodic validation reports, in nats (batch,): by default
        ``log_prob``; a model whose likelihood is expensive may return a cheaper estimate
        (``dgm eval`` still computes the full one)."""
        return self.log_prob(x, c)

    # -- shared helpers -------------------------------------------------------------------

    @functools.cached_property
    def conditioning(self) -> Conditioning:
        """What c is, from the conditioning mixins of the config (``conditioning_of``); read
        once, since the config is fixed when the model is built."""
        return conditioning_of(self.config)

    @property
    def num_classes(self) -> int:
        """Number of classes c ranges over; 0 unless the model is class-conditional."""
        return self.conditioning.num_classes

    @property
    def conditional(self) -> bool:
        """True when the model takes a c (labels or a context)."""
        return self.conditioning.kind != "none"

    @property
    def integer_data(self) -> bool:
        """True when x is an integer tensor (the support is a set of integers)."""
        return is_integer_support(self.support)

    @property
    def num_dims(self) -> int:
        """D, the number of dimensions of one x (bits/dim divide by D ln 2)."""
        return self.event_shape.numel()

    @property
    def device(self) -> torch.device:
        for t in itertools.chain(self.parameters(), self.buffers()):
            return t.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the parameters, else of the floating buffers (models of
        counts and data points have buffers only), else torch's default."""
        for t in itertools.chain(self.parameters(), self.buffers()):
            if t.is_floating_point():
                return t.dtype
        return torch.get_default_dtype()

    def check_x(self, x: Tensor) -> Tensor:
        """Reject x whose trailing shape is not ``event_shape``, whose dtype does not suit the
        support, or whose values lie outside ``support``; returns x as the model takes it
        (integer x as int64, float x in the model's dtype). NaN marks a missing value for
        models that marginalise (``Marginalizes``) and is an error for the others."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
        n = len(self.event_shape)
        if x.dim() != n + 1 or x.shape[1:] != self.event_shape:
            raise ValueError(
                f"x has shape {tuple(x.shape)}, "
                f"expected (batch, {', '.join(map(str, self.event_shape))})"
            )
        name = type(self).__name__
        if self.integer_data:
            if x.is_floating_point() or x.is_complex():
                raise ValueError(
                    f"x has dtype {x.dtype} but {name} models integer values ({self.support}): "
                    "pass an integer tensor (x.long()); for images use --scale byte"
                )
            x = x.long()
        else:
            if not x.is_floating_point():
                raise ValueError(
                    f"x has dtype {x.dtype} but {name} models real-valued x ({self.support}): "
                    "pass a float tensor (x.float()); tokens and categories need a model "
                    "of integer data"
                )
            x = x.to(self.dtype)
        if not self.check_values:
            return x
        if self.support is constraints.boolean and torch.equal(x.bool().to(x.dtype), x):
            return x  # one pass: exactly 0 or 1 everywhere (NaN and inf fail it too)
        values = x
        if x.is_floating_point():
            missing = torch.isnan(x)
            if bool(missing.any()):
                if not isinstance(self, Marginalizes):
                    raise ValueError(
                        f"x contains NaN; {name} cannot marginalise missing values "
                        "(impute them first, or use a model that can)"
                    )
                values = x[~missing]
            if not bool(torch.isfinite(values).all()):
                raise ValueError("x contains infinite values")
        if self.support is not constraints.real and not bool(self.support.check(values).all()):
            what = "values other than 0 and 1" if self.support is constraints.boolean else ""
            observed = f"observed range [{values.min().item():g}, {values.max().item():g}]"
            hint = self.support_hint()
            raise ValueError(
                f"x has values outside the support of {name} ({self.support})"
                + (f": it holds {what}, {observed}" if what else f"; {observed}")
                + (f". To fix: {hint}" if hint else "")
            )
        return x

    def support_hint(self) -> str:
        """How to fix data outside ``support``, in command-line words (for error messages)."""
        return ""

    def check_c(self, c: Tensor | int | None, n: int) -> Tensor | None:
        """Validate the conditioning argument for a batch of n against ``conditioning``;
        returns labels as int64 (n,), a float context in the model's dtype or integer
        tokens as int64 (n, *context_shape), or None. One label or one context without the
        batch dimension is repeated n times."""
        cond = self.conditioning
        name = type(self).__name__
        if cond.kind == "none":
            if c is not None:
                raise ValueError(
                    f"{name} is unconditional: pass c=None "
                    "(build it with num_classes > 0 or a context_shape for p(x | c))"
                )
            return None
        if c is None:
            if cond.optional:
                return None
            raise ValueError(f"{name} is conditional: pass c, {cond.describe()}")
        c = torch.as_tensor(c, device=self.device)
        if cond.kind == "classes":
            if c.dim() == 0:
                c = c.expand(n)
            if c.shape != (n,) or c.is_floating_point() or c.dtype == torch.bool:
                raise ValueError(
                    f"c has shape {tuple(c.shape)} and dtype {c.dtype}, expected "
                    f"{cond.describe().replace('(batch,)', f'({n},)')}"
                )
            if bool(((c < 0) | (c >= cond.num_classes)).any()):
                raise ValueError(f"c has labels outside 0..{cond.num_classes - 1}")
            return c.long()
        shape = torch.Size(cond.context_shape)
        if c.shape == shape:
            c = c.expand(n, *shape)
        if c.shape != (n, *shape) or (cond.context_vocab > 0) == c.is_floating_point():
            dims = ", ".join(map(str, (n, *shape)))
            raise ValueError(
                f"c has shape {tuple(c.shape)} and dtype {c.dtype}, expected "
                f"{cond.describe().split(', shape')[0]}, shape ({dims})"
            )
        if cond.context_vocab > 0:
            if bool(((c < 0) | (c >= cond.context_vocab)).any()):
                raise ValueError(f"c has tokens outside 0..{cond.context_vocab - 1}")
            return c.long()
        if self.check_values and not bool(torch.isfinite(c).all()):
            raise ValueError("c contains NaN or infinite values")
        return c.to(self.dtype)

    def sample_settings(self, options: dict[str, Any]) -> Any:
        """The ``sample_options`` dataclass built from ``sample(**options)``; an option the
        model does not take is an error naming the ones it does."""
        if self.sample_options is None:
            if options:
                raise ValueError(
                    f"{type(self).__name__}.sample takes no options, got {sorted(options)}"
                )
            return None
        from dgm.config import from_dict

        settings = from_dict(self.sample_options, options)
        temperature = getattr(settings, "temperature", 1.0)  # every model's, checked once
        if not (math.isfinite(temperature) and temperature >= 0):  # 0: a model's own choice
            raise ValueError(
                f"temperature must be a finite number, not negative, got {temperature} "
                "(1 samples the model as trained; < 1 sharper, > 1 flatter)"
            )
        return settings

    def _check_phase(self, phase: str) -> None:
        if phase not in self.phases:
            raise ValueError(
                f"unknown phase {phase!r} for {type(self).__name__}; phases: {self.phases}"
            )

    def extra_repr(self) -> str:
        return f"event_shape={tuple(self.event_shape)}"


# -- capabilities: small protocols the tools check for -----------------------------------


@runtime_checkable
class Encodable(Protocol):
    """A latent space: ``encode`` x to it, ``decode`` back, and the ``prior`` over it.
    VAE codes, a flow's base space, DDIM's x_T; used for interpolation and representations."""

    def encode(self, x: Tensor, c: Tensor | None = None) -> Distribution | Tensor: ...

    def decode(self, z: Tensor, c: Tensor | None = None) -> Distribution | Tensor: ...

    def prior(self) -> Distribution: ...


@runtime_checkable
class ImportanceWeighted(Protocol):
    """``log_prob_iw(x, k, c)``: the importance-weighted bound IWAE_k in nats (batch,),
    tighter as k grows (Burda et al. 2015). Keeps no autograd graph unless asked."""

    def log_prob_iw(self, x: Tensor, k: int, c: Tensor | None = None) -> Tensor: ...


@runtime_checkable
class ELBOTerms(Protocol):
    """``elbo_terms(x, c)``: (E_q log p(x | z), KL(q ‖ p)) per example in nats, the two
    terms a latent-variable model's ``log_prob`` adds up (reports show both)."""

    def elbo_terms(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class Completable(Protocol):
    """``complete(x, observed_mask, c, generator)`` draws the dimensions where
    ``observed_mask`` is False given the others (inpainting, imputation); observed
    dimensions come back unchanged. The mask has x's shape (or broadcasts to it)."""

    def complete(
        self,
        x: Tensor,
        observed_mask: Tensor,
        c: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor: ...


@runtime_checkable
class DiscreteAutoregressive(Protocol):
    """The per-dimension conditionals of a model of discrete x, in a fixed order, for
    entropy coding. ``ordering()`` is a permutation of the D flattened dimensions;
    ``conditional_logits(x, c)`` gives logits (batch, D, V) over the V values of each
    flattened dimension d given the dimensions before d in that order (teacher forcing),
    and ``log_prob`` is the sum of the chosen log-softmax entries."""

    def ordering(self) -> Tensor: ...

    def conditional_logits(self, x: Tensor, c: Tensor | None = None) -> Tensor: ...


@runtime_checkable
class TokenSequence(Protocol):
    """x are token sequences (T,) that may end in padding: ``token_counts(x)`` (batch,) is
    the number of real tokens of each, its end token included and the padding after it
    excluded. Per-token figures (nats per token, bits per character) divide by their sum,
    never by T."""

    def token_counts(self, x: Tensor) -> Tensor: ...


def real_token_counts(x: Tensor, end_token: int) -> Tensor:
    """Real tokens per row of token sequences x (B, T), int64 (B,): up to and including the
    first ``end_token`` (what follows is padding), or all T where a row holds none or
    ``end_token`` is -1 (running text without padding)."""
    B, T = x.shape[:2]
    if end_token < 0:
        return torch.full((B,), T, dtype=torch.long, device=x.device)
    is_end = x == end_token  # (B, T)
    first = is_end.long().argmax(1)  # (B,): the first end token (argmax takes the first)
    return torch.where(is_end.any(1), first + 1, T)


@runtime_checkable
class Marginalizes(Protocol):
    """Missing values: ``log_prob_observed(x, observed_mask, c)`` is log p(x_observed) in
    nats (batch,), the missing dimensions integrated out. For float x a NaN means missing
    and ``log_prob`` marginalises it; for integer x the boolean mask says what is missing."""

    def log_prob_observed(
        self, x: Tensor, observed_mask: Tensor, c: Tensor | None = None
    ) -> Tensor: ...


@runtime_checkable
class ClosedFormFit(Protocol):
    """Models fitted by closed-form updates (counting, EM) instead of gradient steps.

    ``fit_step`` makes one full pass over ``batches`` (an iterable of (x, c) pairs) and
    updates the parameters in place: one EM iteration, or the whole fit for naive Bayes.
    The trainer calls it once per step and returns its metrics to the log.
    """

    def fit_step(self, batches: Iterable[tuple[Tensor, Tensor | None]]) -> dict[str, Tensor]: ...


def sample_batches(
    model: GenerativeModel,
    n: int,
    c: Tensor | None,
    batch_size: int,
    generator: torch.Generator | None = None,
    **options: Any,
) -> Iterator[Tensor]:
    """``model.sample`` of n in batches of at most ``batch_size`` (c sliced to match),
    each batch on the CPU. One batch when n <= batch_size: the same draws as one call."""
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        part = None if c is None else c[start:stop]
        yield model.sample(stop - start, part, generator=generator, **options).cpu()
