"""Small models that exercise the parts of the contract the VAE family does not: two
training phases (a GAN), closed-form fitting (EM), a deterministic loss (for exact
distributed comparisons), a loss or a gradient that diverges on purpose, losses of known
value (for the logged means) and models that record what the trainer showed them."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from unittest import mock

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal
from torch.nn import functional as F

import dgm
from dgm.data.dataset import get
from dgm.model import GenerativeModel, Likelihood, Loss
from dgm.registry import register, unregister

# why a test of a side-by-side benchmark skips: its peer library is a bench-only extra
BENCH_EXTRA = "the peer of a bench-only comparison: pip install -e '.[bench]'"


@dataclasses.dataclass
class GaussianConfig:
    nan_at_update: int = -1  # the loss turns NaN at this update (-1: never)
    nan_grad_at_update: int = -1  # the loss stays finite, its gradient turns NaN (-1: never)
    noise: float = 0.0  # the loss sees x + noise * torch.randn (0: deterministic)


class _NaNGradient(torch.autograd.Function):
    """The identity whose gradient is NaN."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad * math.nan


class DiagonalGaussian(GenerativeModel):
    """A diagonal Gaussian with learned mean and scale: a deterministic exact likelihood.

    Its training-mode ``loss`` records what the trainer showed it: ``seen_steps`` (the
    ``training_step`` of each call), ``seen_check_values``, ``noise_draws`` (with
    ``noise``), and ``before_bad_step`` (the state at the NaN-gradient update).
    """

    likelihood = Likelihood.EXACT

    def __init__(self, event_shape, config: GaussianConfig) -> None:
        super().__init__(event_shape, config)
        self.loc = nn.Parameter(torch.randn(self.event_shape) * 0.1)
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.seen_steps: list[int] = []
        self.seen_check_values: list[bool] = []
        self.noise_draws: list[Tensor] = []
        self.before_bad_step: dict[str, Tensor] | None = None

    def dist(self) -> Independent:
        return Independent(Normal(self.loc, self.log_scale.exp()), len(self.event_shape))

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        x = self.check_x(x)
        self.check_c(c, len(x))
        return self.dist().log_prob(x)

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        if self.training and self.config.noise > 0:
            eps = torch.randn_like(x)
            self.noise_draws.append(eps.detach().clone())
            x = x + self.config.noise * eps
        out = super().loss(x, c, phase=phase)
        if self.training:
            self.seen_steps.append(self.training_step)
            self.seen_check_values.append(self.check_values)
            self.updates += 1
            if int(self.updates) == self.config.nan_at_update:
                return Loss(out.value * math.nan, out.metrics)
            if int(self.updates) == self.config.nan_grad_at_update:
                self.before_bad_step = {k: v.clone() for k, v in self.state_dict().items()}
                return Loss(_NaNGradient.apply(out.value), out.metrics)
        return out

    def sample(
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options,
    ) -> Tensor:
        self.sample_settings(options)  # no options: refuses any
        self.check_c(c, n)
        eps = torch.randn(
            (n, *self.event_shape), generator=generator, device=self.loc.device, dtype=self.dtype
        )
        return self.loc + self.log_scale.exp() * eps


@dataclasses.dataclass
class MixtureConfig:
    num_components: int = 3  # enough for the toy data the tests use


class EMGaussianMixture(GenerativeModel):
    """A diagonal Gaussian mixture fitted by EM: one ``fit_step`` = one EM iteration."""

    likelihood = Likelihood.EXACT

    def __init__(self, event_shape, config: MixtureConfig) -> None:
        super().__init__(event_shape, config)
        k, d = config.num_components, self.num_dims
        self.register_buffer("logits", torch.zeros(k))
        self.register_buffer("means", torch.randn(k, d))
        self.register_buffer("log_scales", torch.zeros(k, d))

    def _component_log_prob(self, x: Tensor) -> Tensor:  # (B, K)
        comp = Normal(self.means, self.log_scales.exp())
        return comp.log_prob(x.reshape(len(x), 1, -1)).sum(-1) + self.logits.log_softmax(0)

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        x = self.check_x(x)
        self.check_c(c, len(x))
        return self._component_log_prob(x).logsumexp(-1)

    def fit_step(self, batches) -> dict[str, Tensor]:
        k, d = self.config.num_components, self.num_dims
        zeros = lambda *shape: torch.zeros(shape, dtype=self.dtype)  # noqa: E731
        n, s0, s1, s2, ll = 0, zeros(k), zeros(k, d), zeros(k, d), 0.0
        for x, _ in batches:
            x = self.check_x(x).reshape(len(x), -1)
            joint = self._component_log_prob(x)  # (B, K)
            ll += float(joint.logsumexp(-1).sum())
            r = joint.softmax(-1)  # responsibilities (B, K)
            s0 += r.sum(0)
            s1 += r.T @ x
            s2 += r.T @ x**2
            n += len(x)
        mean = s1 / s0[:, None]
        var = (s2 / s0[:, None] - mean**2).clamp_min(1e-4)
        self.logits.copy_((s0 / n).log())
        self.means.copy_(mean)
        self.log_scales.copy_(0.5 * var.log())
        return {"log_likelihood": torch.tensor(ll / n)}  # of the parameters before this update

    def sample(
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options,
    ) -> Tensor:
        self.sample_settings(options)  # no options: refuses any
        self.check_c(c, n)
        idx = torch.multinomial(self.logits.softmax(0), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.num_dims, generator=generator, dtype=self.dtype)
        return (self.means[idx] + self.log_scales[idx].exp() * eps).reshape(n, *self.event_shape)


@dataclasses.dataclass
class ToyGANConfig:
    critic_steps: int = 2  # discriminator updates per generator update, as in WGAN


class ToyGAN(GenerativeModel):
    """An affine generator against a quadratic logistic discriminator, non-saturating loss."""

    likelihood = Likelihood.NONE

    def __init__(self, event_shape, config: ToyGANConfig) -> None:
        super().__init__(event_shape, config)
        d = self.num_dims
        self.phases = ("discriminator",) * config.critic_steps + ("generator",)
        self.generator = nn.Linear(d, d)
        self.discriminator = nn.Linear(2 * d, 1)
        self.calls: list[str] = []

    def _logits(self, x: Tensor) -> Tensor:
        return self.discriminator(torch.cat([x, x**2], -1)).squeeze(-1)

    def _fake(self, n: int) -> Tensor:
        w = self.generator.weight
        return self.generator(torch.randn(n, self.num_dims, device=w.device, dtype=w.dtype))

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        self._check_phase(phase)
        x = self.check_x(x).reshape(len(x), -1)
        self.calls.append(phase)
        if phase == "discriminator":
            real, fake = self._logits(x), self._logits(self._fake(len(x)).detach())
            value = F.softplus(-real).mean() + F.softplus(fake).mean()
        else:
            value = F.softplus(-self._logits(self._fake(len(x)))).mean()
        return Loss(value, {})

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "discriminator": list(self.discriminator.parameters()),
            "generator": list(self.generator.parameters()),
        }

    def sample(
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options,
    ) -> Tensor:
        self.sample_settings(options)  # no options: refuses any
        self.check_c(c, n)
        z = torch.randn(n, self.num_dims, generator=generator, dtype=self.dtype)
        return self.generator(z).reshape(n, *self.event_shape)


@dataclasses.dataclass
class CriticConfig:
    critic_steps: int = 3  # critic calls per generator call, as in WGAN


class ConstantCritic(GenerativeModel):
    """Two phases whose losses have known values: each critic call returns 2 and reports
    ``call``, its index among the step's critic calls (0, 1, 2, ...); each generator call
    returns 5. Every gradient is all ones: norm 2 for the critic's 4 parameters, 3 for the
    generator's 9. A step's means are then critic loss 2, call (k-1)/2, norms 2 and 3."""

    likelihood = Likelihood.NONE

    def __init__(self, event_shape, config: CriticConfig) -> None:
        super().__init__(event_shape, config)
        self.phases = ("critic",) * config.critic_steps + ("generator",)
        self.critic = nn.Parameter(torch.zeros(4))
        self.generator = nn.Parameter(torch.zeros(9))
        self.critic_calls = 0

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        self._check_phase(phase)
        self.check_x(x)
        if phase == "critic":
            k = self.critic_calls % self.config.critic_steps
            self.critic_calls += 1
            s = self.critic.sum()
            return Loss(2.0 + (s - s.detach()), {"call": torch.tensor(float(k))})
        s = self.generator.sum()
        return Loss(5.0 + (s - s.detach()), {})

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"critic": [self.critic], "generator": [self.generator]}

    def sample(self, n: int, c: Tensor | None = None, *, generator=None, **options) -> Tensor:
        self.sample_settings(options)
        self.check_c(c, n)
        return self.generator.sum().detach() + torch.zeros(n, *self.event_shape, dtype=self.dtype)


@dataclasses.dataclass
class RecordingConfig:
    scale: float = 1.0  # unused: a config needs a field to round-trip


class RecordingFit(GenerativeModel):
    """Fitted in closed form; ``fit_step`` records the examples it is given (x holds each
    example's index) and whether autograd was on."""

    def __init__(self, event_shape, config: RecordingConfig) -> None:
        super().__init__(event_shape, config)
        self.register_buffer("total", torch.zeros(()))
        self.seen: list[Tensor] = []
        self.grad_enabled: list[bool] = []

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return torch.zeros(len(self.check_x(x)))

    def fit_step(self, batches) -> dict[str, Tensor]:
        self.grad_enabled.append(torch.is_grad_enabled())
        seen = torch.cat([self.check_x(x).reshape(-1) for x, _ in batches])
        self.seen.append(seen)
        self.total += seen.sum()
        return {"examples": torch.tensor(float(len(seen)))}


TEST_MODELS = {
    "test_gaussian": (DiagonalGaussian, GaussianConfig),
    "test_em_mixture": (EMGaussianMixture, MixtureConfig),
    "test_gan": (ToyGAN, ToyGANConfig),
    "test_constant_critic": (ConstantCritic, CriticConfig),
}


@contextlib.contextmanager
def registered():
    """The test models in the registry for the duration of a test."""
    for name, (cls, config) in TEST_MODELS.items():
        register(name, config)(cls)
    try:
        yield
    finally:
        for name in TEST_MODELS:
            unregister(name)


def gaussian_data(n: int = 512, d: int = 2, seed: int = 0):
    """n points of N(2, 0.5^2 I) in d dimensions, as TensorData."""
    from dgm.data import TensorData

    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, d, generator=g) * 0.5 + 2.0, name="gauss")


def snapshot(folder):
    """Every file under ``folder`` with its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_same_weights(a, b, names) -> None:
    """Every weights file in ``names`` holds bit-identical tensors in run folders a and b."""
    from safetensors.torch import load_file

    for name in names:
        mine, theirs = load_file(str(a / name)), load_file(str(b / name))
        assert mine.keys() == theirs.keys(), name
        for k in mine:
            assert torch.equal(mine[k], theirs[k]), f"{name}: {k}"


def one_line_error(err: str, command: str) -> str:
    """The one line ``dgm COMMAND: error: ...`` that ``err`` must be (no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"dgm {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


@contextlib.contextmanager
def stopping_at(step: int):
    """Inside the block, training asks itself to stop (as Ctrl-C does) once ``step`` steps
    are done; the trainer is restored after it."""
    from dgm.train import Trainer

    original = Trainer._train_step

    def stop_there(self):
        original(self)
        if self.step + 1 == step:
            self.request_stop()

    with mock.patch.object(Trainer, "_train_step", stop_there):
        yield


def quiet_config(**kw):
    """A short CPU TrainConfig with no periodic work unless asked for."""
    from dgm.train import TrainConfig

    base = dict(
        steps=20,
        batch_size=32,
        eval_every=0,
        sample_every=0,
        log_every=5,
        checkpoint_every=5,
        device="cpu",
        warmup_steps=2,
    )
    return TrainConfig(**{**base, **kw})


# -- pixel models (PixelCNN, PixelRNN): enumeration and the Jacobian ------------------------


def binary_grid(shape: tuple[int, ...]) -> Tensor:
    """Every binary x of the given event shape, (2^D, *shape), float64."""
    D = math.prod(shape)
    grid = torch.tensor(list(itertools.product((0.0, 1.0), repeat=D)), dtype=torch.float64)
    return grid.reshape(-1, *shape)


def level_grid(shape: tuple[int, ...], levels: int) -> Tensor:
    """Every integer x in 0..levels-1 of the given event shape, (levels^D, *shape)."""
    grid = torch.tensor(list(itertools.product(range(levels), repeat=math.prod(shape))))
    return grid.reshape(-1, *shape)


def assert_normalised(model: GenerativeModel, every: Tensor, c: Tensor | None = None) -> Tensor:
    """Σ exp log_prob over ``every`` possible x is 1 to 1e-6, and the per-dimension
    conditionals add up to log_prob; returns log_prob (N,)."""
    lp = model.log_prob(every, c)
    assert abs(lp.logsumexp(0).exp().item() - 1) < 1e-6
    logits = model.conditional_logits(every, c).log_softmax(-1)  # (N, D, V)
    chosen = logits.gather(-1, every.reshape(len(every), -1, 1).long()).sum((1, 2))
    torch.testing.assert_close(chosen, lp)
    return lp


def order_positions(model: GenerativeModel) -> Tensor:
    """position[d]: where flattened dimension d comes in ``model.ordering()``."""
    order = model.ordering()
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))
    return position


def pixel_jacobian(model: GenerativeModel, shape: tuple[int, int, int], points: int = 4) -> Tensor:
    """|∂ head params (ch, i, j) / ∂ input (ch', i', j')| of a pixel model's
    ``_head_params``, summed over the parameters and ``points`` random float64 inputs:
    (D, D), rows outputs and columns inputs, both flattened (ch·H·W + i·W + j)."""
    C, H, W = shape
    D = C * H * W
    g = torch.Generator().manual_seed(0)
    total = torch.zeros(D, D, dtype=torch.float64)
    for _ in range(points):
        x = torch.randn(1, C, H, W, generator=g, dtype=torch.float64)
        J = torch.autograd.functional.jacobian(lambda t: model._head_params(t, None), x)
        total += J.abs().sum(2).reshape(D, D)  # (1, C, P, H, W, 1, C, H, W) -> (D, D)
    return total


def assert_raster_autoregressive(model: GenerativeModel, shape: tuple[int, int, int]) -> None:
    """The model's order is raster over pixels, R -> G -> B inside a pixel, and its Jacobian
    follows it: no output depends on an input not before it, every output but the first
    sees some input, and (with C = 3) G sees R and B sees R and G inside pixel (1, 1)."""
    C, H, W = shape
    position = order_positions(model)
    ch, i, j = torch.meshgrid(torch.arange(C), torch.arange(H), torch.arange(W), indexing="ij")
    assert torch.equal(position, ((i * W + j) * C + ch).flatten())  # raster, R -> G -> B
    J = pixel_jacobian(model, shape)
    later = position[None, :] >= position[:, None]  # input not before the output
    assert (J[later] == 0).all(), "an output depends on an input not before it"
    for d in range(model.num_dims):
        if position[d] > 0:
            assert J[d, position < position[d]].sum() > 0, f"output {d} sees nothing"
    if C == 3:  # pixel (1, 1): flattened index ch·H·W + 1·W + 1
        r, g, b = (1 * W + 1 + k * H * W for k in range(3))
        assert J[g, r] > 0 and J[b, r] > 0 and J[b, g] > 0


def build_pixel(name: str, shape: tuple[int, int, int], **overrides) -> GenerativeModel:
    """``dgm.create(name, shape, **overrides)`` in float64, seed 0, its weights moved off
    their init (+ 0.2 N(0, 1)) so nothing is trivially symmetric."""
    torch.manual_seed(0)
    model = dgm.create(name, shape, **overrides).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def assert_each_c_normalised(model: GenerativeModel, every: Tensor) -> None:
    """Over ``every`` possible x, the model sums to one given each of three classes (a
    class-conditional model) or three random contexts, and c changes the distribution."""
    n = len(every)
    if model.num_classes:
        cs = [torch.full((n,), k) for k in range(3)]
    else:
        g = torch.Generator().manual_seed(3)
        cs = [torch.randn(model.conditioning.context_shape, generator=g).double() for _ in range(3)]
        cs = [c.expand(n, *c.shape) for c in cs]
    lps = [assert_normalised(model, every, c) for c in cs]
    assert (lps[0] - lps[1]).abs().max() > 1e-3  # c changes the distribution


def sample_fast_and_naive(model: GenerativeModel, n: int, c: Tensor | None = None, **options):
    """(fast, naive): ``model.sample`` with ``fast`` True and False, the same generator;
    each call is made to fail if it takes the other path, so the two really differ."""

    def refuse(*args, **kwargs):
        raise AssertionError("sample took the other sampling path")

    model._naive_fill = refuse  # the fast call must not fall back to the naive loop
    try:
        fast = model.sample(n, c, generator=torch.Generator().manual_seed(11), **options)
    finally:
        del model._naive_fill
    model._fast_sampler = refuse  # fast=False must not ask for the fast sampler
    try:
        naive = model.sample(
            n, c, generator=torch.Generator().manual_seed(11), fast=False, **options
        )
    finally:
        del model._fast_sampler
    return fast, naive


def completion_masks(shape: tuple[int, ...], n: int) -> dict[str, Tensor]:
    """Observed masks (n, *shape) of images (C, H, W) that exercise a sampler's fill:
    ``bottom-half`` (whole rows observed in every example), ``random`` (each sub-pixel of
    each example), ``some-all-observed`` (random, but the first and last sub-pixels, the
    middle channel of pixel (0, 1) and all of row 1 observed in every example: skipped
    with no draw), for C > 1 ``later-channels-observed`` (every channel of pixel (0, 0) but
    the first, and nothing else: a sampler must finish that pixel after its one draw)
    and ``none`` (nothing observed: a sample)."""
    C, H, W = shape
    rows = torch.arange(H)[:, None].expand(H, W)  # (H, W)
    g = torch.Generator().manual_seed(5)
    some = torch.rand(n, C, H, W, generator=g) < 0.5
    some[:, 0, 0, 0] = some[:, -1, -1, -1] = some[:, C // 2, 0, min(1, W - 1)] = True
    some[:, :, min(1, H - 1)] = True
    masks = {
        "bottom-half": (rows < H - H // 2).expand(n, C, H, W).clone(),
        "random": torch.rand(n, C, H, W, generator=g) < 0.5,
        "some-all-observed": some,
        "none": torch.zeros(n, C, H, W, dtype=torch.bool),
    }
    if C > 1:
        later = torch.zeros(n, C, H, W, dtype=torch.bool)
        later[:, 1:, 0, 0] = True
        masks["later-channels-observed"] = later
    return masks


def complete_fast_and_naive(
    model: GenerativeModel, x: Tensor, mask: Tensor, c: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """(fast, naive): ``model.complete`` with its fast sampler (the naive loop made to fail)
    and with the naive loop (``_fast_sampler`` returning None), the same generator."""
    with mock.patch.object(model, "_naive_fill", side_effect=AssertionError("naive loop ran")):
        fast = model.complete(x, mask, c, torch.Generator().manual_seed(11))
    with mock.patch.object(model, "_fast_sampler", return_value=None):
        naive = model.complete(x, mask, c, torch.Generator().manual_seed(11))
    return fast, naive


def assert_fast_completion_is_naive(model: GenerativeModel, n: int = 4) -> None:
    """For each of ``completion_masks`` on n random images in the support (given random
    labels or contexts if the model is conditional), the fast completion equals the naive
    loop's pixel for pixel, keeps the observed entries, and with nothing observed equals
    ``sample`` and the fast sampler's ``draw`` with the same generator."""
    g = torch.Generator().manual_seed(4)
    c = None
    if model.num_classes:
        c = torch.randint(model.num_classes, (n,), generator=g)
    elif model.conditional:
        c = torch.randn(n, *model.conditioning.context_shape, generator=g, dtype=torch.float64)
    x = torch.randint(model.levels, (n, *model.event_shape), generator=g)
    x = x.to(torch.float64) if not model.integer_data else x
    for name, mask in completion_masks(tuple(model.event_shape), n).items():
        fast, naive = complete_fast_and_naive(model, x, mask, c)
        assert torch.equal(fast, naive), f"mask {name}: fast and naive completions differ"
        assert torch.equal(fast[mask], x[mask]) and model.support.check(fast).all(), name
        if name == "none":  # nothing observed: a sample, and the fast sampler's draw
            drawn = model.sample(n, c, generator=torch.Generator().manual_seed(11))
            assert torch.equal(fast, drawn)
            drawn = model._fast_sampler().draw(n, c, torch.Generator().manual_seed(11), 1.0)
            assert torch.equal(fast, drawn)


def assert_completion_keeps_observed(model: GenerativeModel) -> None:
    """``complete`` keeps the observed entries of a sample, draws the others in the
    support, and with everything observed returns x itself."""
    x = model.sample(4, generator=torch.Generator().manual_seed(1))
    mask = torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) < 0.5
    out = model.complete(x, mask, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out[mask], x[mask]) and model.support.check(out).all()
    assert not torch.equal(out, x)  # something was drawn
    assert torch.equal(model.complete(x, torch.ones_like(mask)), x)


def assert_pixel_config_errors(name: str) -> None:
    """The configuration errors every pixel model names: event shape, hidden channels
    per colour, even kernel, no layers, temperature."""
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        dgm.create(name, (4, 4))
    with pytest.raises(ValueError, match="multiple of the 3 image channels"):
        dgm.create(name, (3, 4, 4), hidden_channels=8)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        dgm.create(name, (1, 4, 4), kernel_size=4)
    with pytest.raises(ValueError, match="num_layers"):
        dgm.create(name, (1, 4, 4), num_layers=0)
    with pytest.raises(ValueError, match="temperature"):
        dgm.create(name, (1, 4, 4), hidden_channels=4).sample(2, temperature=0.0)


def digits_nll_after_training(name: str, steps: int, **config) -> tuple[float, float]:
    """(test NLL, independent-pixel NLL) in nats of a float32 model ``name`` on 8x8
    statically binarized digits after ``steps`` Adam steps (lr 1e-2, batch 32, seed 0, one
    thread); the independent model uses the per-pixel training frequencies."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train = get("digits", "train", binarize="static").x  # (N, 1, 8, 8)
        test = get("digits", "test", binarize="static").x
        p = train.mean(0).clamp(1e-3, 1 - 1e-3)  # (1, 8, 8)
        independent = -(test * p.log() + (1 - test) * (1 - p).log()).flatten(1).sum(1).mean()
        torch.manual_seed(0)
        model = dgm.create(name, (1, 8, 8), **config)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        g = torch.Generator().manual_seed(0)
        for _ in range(steps):
            batch = train[torch.randint(len(train), (32,), generator=g)]
            loss = model.loss(batch).value
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            after = -model.log_prob(test).mean().item()
    finally:
        torch.set_num_threads(before)
    return after, independent.item()


# -- flows and the trainer's EMA ------------------------------------------------------------


def perturbed(module: nn.Module, scale: float = 0.3) -> nn.Module:
    """The module in float64, eval mode, with every parameter moved off its (near-identity)
    initial value by ``scale`` N(0, 1) (generator seed 7)."""
    module = module.double()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module.eval()


def fit_tracking_ema(trainer, decay: float) -> dict[str, Tensor]:
    """``trainer.fit()`` while recomputing, after each step, ema <- decay · ema + (1 - decay)
    · param from the model's parameters at the start; asserts the trainer's EMA of every
    parameter equals it to 1e-6 and returns the EMA's state dict."""
    model = trainer.model
    expected = {k: v.detach().clone().double() for k, v in model.named_parameters()}
    original = trainer._train_step

    def step_and_average():
        original()
        for k, p in model.named_parameters():
            expected[k] = decay * expected[k] + (1 - decay) * p.detach().double()

    trainer._train_step = step_and_average
    trainer.fit()
    ema = trainer.ema.state_dict()
    for k, v in expected.items():
        assert torch.allclose(ema[k].double(), v, rtol=0, atol=1e-6), k
    return ema


def masked_checkerboards(model: nn.Module) -> nn.Module:
    """``model`` as the former code built it: every ``CheckerboardCoupling`` replaced by an
    ``AffineCoupling`` with ``checkerboard_mask`` and the same conditioner (the masked
    network at full resolution), in place."""
    from dgm.models.flows.conditioners import checkerboard_mask
    from dgm.models.flows.transforms import AffineCoupling, CheckerboardCoupling

    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, CheckerboardCoupling):
                mask = checkerboard_mask(child.mask.shape, child.parity)
                setattr(module, name, AffineCoupling(mask, child.conditioner, child.bound))
    return model
