"""FVSBN, NADE and MADE: autoregressive structure through the Jacobian, normalisation by
enumeration, NADE's O(HD) pass against the naive one, completion, sampling and a real
learning check on binarized digits. Float64 throughout."""

import itertools
import math

import pytest
import torch

import dgm
from dgm.data.dataset import get
from dgm.model import Completable, DiscreteAutoregressive
from dgm.models.autoregressive.fixed_order import FixedOrderModel

SINGLE = [  # one ordering each
    ("fvsbn", {}),
    ("nade", {"hidden_size": 7}),
    ("made", {"hidden_sizes": (12,)}),
    ("made", {"hidden_sizes": (12, 10), "ordering": "random", "mask_seed": 3}),
    (
        "made",
        {"hidden_sizes": (12,), "num_masks": 3, "ordering": "random", "ensemble_masks": False},
    ),
]
ENSEMBLES = [
    ("made", {"hidden_sizes": (12,), "num_masks": 3}),  # shared (natural) order: a mixture
    ("made", {"hidden_sizes": (12,), "num_masks": 3, "ordering": "random"}),  # no single order
]
IDS = [f"{n}-{o}" for n, o in SINGLE]


def build(name, shape, **overrides):
    torch.manual_seed(0)
    model = dgm.create(name, shape, **overrides).double()
    with torch.no_grad():  # move the biases off zero so nothing is trivially symmetric
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def binary_grid(shape):
    """Every binary x of the given event shape, (2^D, *shape)."""
    D = math.prod(shape)
    grid = torch.tensor(list(itertools.product((0.0, 1.0), repeat=D)), dtype=torch.float64)
    return grid.reshape(-1, *shape)


def check_structure(outputs, order, D):
    """∂ output_i / ∂ x_j is zero unless j comes before i in ``order``, and nonzero for
    some j before i (every i but the first); ``outputs`` maps (D,) to (D, K)."""
    position = torch.empty_like(order)
    position[order] = torch.arange(D)
    g = torch.Generator().manual_seed(0)
    J = sum(
        torch.autograd.functional.jacobian(
            outputs, torch.randn(D, generator=g, dtype=torch.float64)
        ).abs()  # (D, K, D)
        for _ in range(20)  # several points: a ReLU path dead at one is alive at another
    ).amax(1)  # (D, D): output i, input j
    later = position[None, :] >= position[:, None]  # j not before i
    assert (J[later] == 0).all(), "an output depends on an input not before it"
    for i in range(D):
        if position[i] > 0:
            assert J[i, position < position[i]].abs().sum() > 0, f"output {i} sees nothing"


@pytest.mark.parametrize(("name", "overrides"), SINGLE, ids=IDS)
def test_jacobian_is_autoregressive_in_the_ordering(name, overrides):
    model = build(name, (2, 3), **overrides)
    D = model.num_dims
    order = model.ordering()
    assert sorted(order.tolist()) == list(range(D))
    check_structure(lambda v: model._outputs(v[None])[0][:, None], order, D)


def test_jacobian_of_every_mask_set_follows_its_own_ordering():
    model = build("made", (2, 3), hidden_sizes=(12, 9), num_masks=4, ordering="random")
    orders = {tuple(model._order(m).tolist()) for m in range(4)}
    assert len(orders) > 1  # the orderings differ
    for m in range(4):
        check_structure(lambda v, m=m: model._single(v[None], m)[0][:, None], model._order(m), 6)


def test_jacobian_of_the_shared_order_ensemble_and_the_categorical_head():
    ens = build("made", (2, 2), hidden_sizes=(12,), num_masks=3)
    x = binary_grid((2, 2))[[5, 10]]
    # the mixture's conditionals through the public path, at binary points
    for row in x:
        J = torch.autograd.functional.jacobian(
            lambda v: ens.conditional_logits(v.view(1, 2, 2))[0, :, 1], row.flatten()
        )
        assert (J.triu() == 0).all() and (J.tril(-1)[1:].abs().sum(1) > 0).all()
    cat = build("made", (1, 3), hidden_sizes=(16,), head="categorical", ordering="random")
    check_structure(lambda v: cat._outputs(v[None])[0], cat.ordering(), 3)


@pytest.mark.parametrize("shape", [(2, 2), (1, 6)])
@pytest.mark.parametrize(("name", "overrides"), SINGLE + ENSEMBLES, ids=[*IDS, "ens", "ens-rand"])
def test_probabilities_sum_to_one_by_enumeration(name, overrides, shape):
    model = build(name, shape, **overrides)
    every = binary_grid(shape)
    total = model.log_prob(every).logsumexp(0).exp()
    assert abs(total.item() - 1) < 1e-6
    several_orders = name == "made" and model.ensembled and not model.shared_order
    assert isinstance(model, DiscreteAutoregressive)
    if not several_orders:  # the conditionals add up to log_prob, the mixture's too
        logits = model.conditional_logits(every).log_softmax(-1)  # (2^D, D, 2)
        chosen = logits.gather(-1, every.reshape(len(every), -1, 1).long()).sum((1, 2))
        torch.testing.assert_close(chosen, model.log_prob(every))


def test_ensemble_is_the_log_mean_exp_of_its_mask_sets_and_loss_cycles_them():
    model = build("made", (2, 3), hidden_sizes=(12,), num_masks=3, ordering="random")
    x = binary_grid((2, 3))[::7]
    flat = x.flatten(1)
    each = torch.stack([model._log_prob_flat(flat, model._single(flat, m)) for m in range(3)])
    torch.testing.assert_close(model.log_prob(x), each.logsumexp(0) - math.log(3))
    for step in range(5):
        model.training_step = step
        torch.testing.assert_close(model.loss(x).value, -each[step % 3].mean())
    with pytest.raises(ValueError, match="ensemble_masks=False"):
        model.conditional_logits(x)
    single = build("made", (2, 3), hidden_sizes=(12,), num_masks=3, ensemble_masks=False)
    torch.testing.assert_close(
        single.log_prob(x), single._log_prob_flat(flat, single._single(flat, 0))
    )


@pytest.mark.parametrize("overrides", [{}, {"ordering": "random"}, {"num_masks": 2}])
def test_categorical_made_sums_to_one_over_all_256_levels(overrides):
    model = build("made", (1, 2), hidden_sizes=(16,), head="categorical", **overrides)
    grid = torch.cartesian_prod(torch.arange(256), torch.arange(256)).view(-1, 1, 2)
    total = model.log_prob(grid).logsumexp(0).exp()
    assert abs(total.item() - 1) < 1e-6
    assert model.sample(5).dtype == torch.long


def test_nade_running_pass_equals_the_naive_per_dimension_computation():
    model = build("nade", (1, 7), hidden_size=5)
    x = binary_grid((1, 7))[::9].flatten(1)  # (B, 7)
    naive = torch.stack(
        [
            model.b[d] + torch.sigmoid(model.c + x[:, :d] @ model.W[:, :d].T) @ model.V[d]
            for d in range(7)
        ],
        dim=1,
    )  # (B, 7)
    torch.testing.assert_close(model._outputs(x), naive)
    # the O(HD) sampler draws what the generic one-pass-per-dimension sampler draws
    start = torch.zeros(20, 7, dtype=torch.float64)
    none = torch.zeros(20, 7, dtype=torch.bool)
    fast = model._fill(start.clone(), none, None, torch.Generator().manual_seed(1), 0.7)
    slow = FixedOrderModel._fill(
        model, start.clone(), none, None, torch.Generator().manual_seed(1), 0.7
    )
    assert torch.equal(fast, slow)


ALL = SINGLE + ENSEMBLES + [("made", {"hidden_sizes": (12,), "head": "categorical"})]


@pytest.mark.parametrize(("name", "overrides"), ALL)
def test_completion_keeps_the_observed_dims_and_sampling_follows_the_generator(name, overrides):
    model = build(name, (2, 3), **overrides)
    assert isinstance(model, Completable)
    x = model.sample(8, generator=torch.Generator().manual_seed(2))
    again = model.sample(8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(x, again) and model.support.check(x).all()
    assert not torch.equal(x, model.sample(8, generator=torch.Generator().manual_seed(3)))
    mask = torch.rand(x.shape, generator=torch.Generator().manual_seed(4)) < 0.5
    out = model.complete(x, mask, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out[mask], x[mask]) and model.support.check(out).all()
    assert torch.equal(model.complete(x, torch.ones_like(mask)), x)
    cold = model.sample(8, generator=torch.Generator().manual_seed(2), temperature=0.05)
    assert model.support.check(cold).all()


@pytest.mark.parametrize(("name", "overrides"), [SINGLE[0], SINGLE[1], SINGLE[2], ENSEMBLES[0]])
def test_completion_of_the_last_dims_is_the_exact_conditional(name, overrides):
    model = build(name, (2, 2), **overrides)  # natural order: the first dims are observed
    every = binary_grid((2, 2))
    x = every[6:7]  # observe x_0 = 0, x_1 = 1
    mask = torch.tensor([[True, True], [False, False]])
    agrees = (every.flatten(1)[:, :2] == x.flatten(1)[:, :2]).all(-1)
    probs = model.log_prob(every).masked_fill(~agrees, -math.inf).softmax(0)
    n = 4000
    draws = model.complete(x.expand(n, 2, 2), mask, generator=torch.Generator().manual_seed(1))
    freq = (draws.reshape(n, 1, -1) == every.reshape(1, 16, -1)).all(-1).double().mean(0)
    se = (probs * (1 - probs) / n).sqrt()
    assert ((freq - probs).abs() <= 5 * se + 1e-9).all()


@pytest.fixture
def one_thread():
    """Small matrices: one thread is fastest, and immune to other processes on the cores
    (two spinning threads competing with them ran 50 to 150 times slower here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


LEARNERS = [
    ("fvsbn", {}, 3e-2),
    ("nade", {"hidden_size": 64}, 1e-2),
    ("made", {"hidden_sizes": (128,), "num_masks": 2}, 3e-3),
]


@pytest.mark.parametrize(("name", "overrides", "lr"), LEARNERS, ids=[n for n, _, _ in LEARNERS])
def test_training_on_binarized_digits_lowers_the_test_nll(name, overrides, lr, one_thread):
    train = get("digits", "train", binarize="static").x.double()  # (N, 1, 8, 8)
    test = get("digits", "test", binarize="static").x.double()
    torch.manual_seed(0)
    model = dgm.create(name, (1, 8, 8), **overrides).double()
    with torch.no_grad():
        before = -model.log_prob(test).mean().item()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    for step in range(300):
        model.training_step = step
        batch = train[torch.randint(len(train), (64,), generator=g)]
        loss = model.loss(batch).value
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = -model.log_prob(test).mean().item()
    print(f"{name}: test NLL {before:.2f} -> {after:.2f} nats")
    assert after < before - 10 and after < 30  # 64 fair bits would be 44.4 nats
