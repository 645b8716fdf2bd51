"""FVSBN, NADE and MADE: autoregressive structure through the Jacobian, normalisation by
enumeration, NADE's O(HD) pass against the naive one, completion, sampling and a real
learning check on binarized digits. Float64 throughout."""

import math

import pytest
import torch

import dgm
from dgm.data.dataset import get
from dgm.model import Completable, DiscreteAutoregressive
from dgm.models.autoregressive.fixed_order import FixedOrderModel
from helpers import binary_grid

SINGLE = [  # one ordering each
    ("fvsbn", {}),
    ("nade", {"hidden_size": 7}),
    ("nade", {"hidden_size": 7, "activation": "relu"}),
    ("made", {"hidden_sizes": (12,)}),
    ("made", {"hidden_sizes": (12, 10), "ordering": "random", "mask_seed": 3}),
    ("made", {"hidden_sizes": (3,)}),  # narrower than D: degrees spread, not cycled
    ("made", {"hidden_sizes": (4,), "ordering": "random", "mask_seed": 3}),
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


def check_structure(outputs, order, D):
    """∂ output_i / ∂ x_j is zero unless j comes before i in ``order``, and nonzero for
    some j before i (every i but the first); ``outputs`` maps (D,) to (D, K)."""
    position = torch.empty_like(order)
    position[order] = torch.arange(D)
    g = torch.Generator().manual_seed(0)
    # vectorize: the D * K backward passes in one batched pass (K = 256 for the categorical
    # head: 768 passes a point one by one took 2.1 of this file's seconds), the same values
    # (bit-equal to the unbatched Jacobian, measured); forward mode would be cheaper still per
    # point but first imports sympy and more (1.3 s)
    J = sum(
        torch.autograd.functional.jacobian(
            outputs, torch.randn(D, generator=g, dtype=torch.float64), vectorize=True
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


@pytest.mark.parametrize(
    ("D", "hidden"),
    [
        (784, (500,)),
        (784, (500, 300)),
        (784, (1000,)),
        (10, (3,)),
        (10, (1,)),
        (10, (4, 2)),
        (6, (12,)),
        (2, (1,)),
    ],
)
@pytest.mark.parametrize("seeded", [False, True])
def test_made_every_input_but_the_last_feeds_the_hidden_layers(D, hidden, seeded):
    """Hidden layers narrower than D once cycled degrees 1..H, so the inputs of degree > H
    fed no hidden unit (284 of 784 at H = 500): now only the last input in the order is
    unused, in the first layer and along every path to the outputs."""
    from dgm.nn.masked import made_masks

    g = torch.Generator().manual_seed(5)
    order = torch.randperm(D, generator=g) if seeded else torch.arange(D)
    masks = made_masks(order, hidden, 1, g if seeded else None)
    unused = (masks[0].sum(0) == 0).nonzero().flatten()  # inputs no first-layer unit reads
    assert unused.tolist() == [int(order[-1])]
    reach = masks[0]
    for mask in masks[1:]:  # (out, D): which inputs each unit can be reached from
        reach = (mask @ reach).clamp(max=1)
    assert (reach.sum(0) == 0).nonzero().flatten().tolist() == [int(order[-1])]


@pytest.mark.parametrize("hidden", [(1,), (3,), (4, 2)])
def test_made_narrow_layers_let_the_last_output_see_every_earlier_input(hidden):
    model = build("made", (2, 3), hidden_sizes=hidden)  # D = 6 > H
    with torch.no_grad():  # every ReLU on and no cancelling paths: J is the connectivity
        for layer in model.net.layers:
            layer.weight.abs_()
            layer.bias.fill_(10.0)
    J = torch.autograd.functional.jacobian(
        lambda v: model._outputs(v[None])[0], torch.randn(6, dtype=torch.float64)
    )  # (D, D): output i, input j
    assert (J[-1, :-1] != 0).all(), "the last output misses an earlier input"


def test_made_saved_with_the_old_cycled_degrees_loads_and_evaluates_identically(tmp_path):
    """Masks are buffers saved with the weights: a run trained when narrow layers cycled
    degrees 1..H keeps its own connectivity when loaded into today's model."""
    from dgm import run_dir as rd

    D, H = 16, 5
    old = build("made", (1, D), hidden_sizes=(H,))
    cycled = 1 + torch.arange(H) % (D - 1)  # the old hidden degrees: 1..H
    inputs = torch.arange(1, D + 1)
    first, out = old.net.layers
    first.mask[0] = (cycled[:, None] >= inputs[None, :]).double()
    out.mask[0] = (inputs[:, None] > cycled[None, :]).double()
    rd.save_weights(tmp_path / "w.safetensors", old, 0)
    fresh = dgm.create("made", (1, D), hidden_sizes=(H,)).double()
    x = torch.randint(0, 2, (8, 1, D), generator=torch.Generator().manual_seed(0)).double()
    assert not torch.equal(fresh.net.layers[0].mask, first.mask)  # today's degrees differ
    rd.load_weights(tmp_path / "w.safetensors", fresh)
    torch.testing.assert_close(fresh.log_prob(x), old.log_prob(x), rtol=0, atol=0)


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


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_nade_running_pass_equals_the_naive_per_dimension_computation(activation):
    model = build("nade", (1, 7), hidden_size=5, activation=activation)
    act = torch.sigmoid if activation == "sigmoid" else torch.relu
    x = binary_grid((1, 7))[::9].flatten(1)  # (B, 7)
    naive = torch.stack(
        [model.b[d] + act(model.c + x[:, :d] @ model.W[:, :d].T) @ model.V[d] for d in range(7)],
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


@pytest.mark.parametrize(("name", "overrides"), [*SINGLE[:4], ENSEMBLES[0]])
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
    # 150 steps (was 300): at 150, seeds 0-2 (init and batches), the test NLL fell by at
    # least 18.1 nats (> 10) to at most 26.5 nats (< 30), made the closest; fvsbn and nade
    # had levelled off by step 100
    for step in range(150):
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


@pytest.mark.parametrize("hidden", [(16, 12), ()])
def test_made_network_context_reaches_every_output_and_keeps_the_masks(hidden):
    from dgm.nn.masked import MADE as MADENet

    torch.manual_seed(0)
    order = torch.tensor([2, 0, 3, 1])
    net = MADENet(4, hidden, 2, orderings=order, context_features=3).double()
    ctx = torch.randn(1, 3, dtype=torch.float64)
    check_structure(lambda v: net(v[None], context=ctx)[0], order, 4)
    # every output (the first in the order too) moves with the context, at several points
    g = torch.Generator().manual_seed(1)
    J = sum(
        torch.autograd.functional.jacobian(
            lambda c: net(torch.randn(1, 4, generator=g, dtype=torch.float64), context=c)[0], ctx
        ).abs()  # (D, K, 1, 3)
        for _ in range(10)
    )
    assert (J.sum((2, 3)) > 0).all(), "an output ignores the context"
    x = torch.randn(5, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"context has shape \(5, 2\), expected \(5, 3\)"):
        net(x, context=torch.zeros(5, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="context has shape None"):
        net(x)
    with pytest.raises(ValueError, match="context_features"):
        MADENet(4, (8,))(x.float(), context=torch.zeros(5, 3))


# -- class conditioning: p(x | c) ------------------------------------------------------------

CONDITIONAL = [
    ("fvsbn", {"num_classes": 3}),
    ("nade", {"hidden_size": 7, "num_classes": 3}),
    ("made", {"hidden_sizes": (12,), "num_classes": 3}),
    ("made", {"hidden_sizes": (12,), "num_masks": 3, "num_classes": 3}),  # the mixture path
    ("made", {"hidden_sizes": (12,), "num_masks": 3, "ordering": "random", "num_classes": 3}),
]
CIDS = ["fvsbn", "nade", "made", "made-ens", "made-ens-rand"]


def one_order(model):
    """False for a MADE ensemble of several orderings (no per-dimension conditionals)."""
    return not (getattr(model, "ensembled", False) and not model.shared_order)


@pytest.mark.parametrize(("name", "overrides"), CONDITIONAL, ids=CIDS)
def test_every_class_is_normalised_and_the_labels_change_log_prob(name, overrides):
    model = build(name, (2, 2), **overrides)
    every = binary_grid((2, 2))
    per_class = torch.stack([model.log_prob(every, torch.full((16,), k)) for k in range(3)])
    torch.testing.assert_close(per_class.logsumexp(1).exp(), torch.ones(3, dtype=torch.float64))
    assert (per_class[0] - per_class[1]).abs().max() > 1e-2  # the label matters
    assert (per_class[1] - per_class[2]).abs().max() > 1e-2
    labels = torch.arange(16) % 3
    torch.testing.assert_close(model.log_prob(every, labels), per_class[labels, torch.arange(16)])
    if one_order(model):  # the conditionals add up to log_prob
        logits = model.conditional_logits(every, labels).log_softmax(-1)  # (16, D, 2)
        chosen = logits.gather(-1, every.reshape(16, -1, 1).long()).sum((1, 2))
        torch.testing.assert_close(chosen, model.log_prob(every, labels))
    with pytest.raises(ValueError, match="is conditional: pass c"):
        model.log_prob(every)


@pytest.mark.parametrize(("name", "overrides"), CONDITIONAL, ids=CIDS)
def test_jacobian_keeps_its_structure_given_a_class(name, overrides):
    model = build(name, (2, 3), **overrides)
    c = torch.tensor([2])
    for m in range(model.config.num_masks if name == "made" else 1):
        if name == "made":
            outputs = lambda v, m=m: model._single(v[None], m, c)[0][:, None]  # noqa: E731
        else:
            outputs = lambda v: model._outputs(v[None], c)[0][:, None]  # noqa: E731
        check_structure(outputs, model._order(m), 6)
    # the first dimension in the order, which sees no x, depends on the class
    zero, labels = torch.zeros(3, 6, dtype=torch.float64), torch.arange(3)
    out = model._single(zero, 0, labels) if name == "made" else model._outputs(zero, labels)
    assert out[:, model._order(0)[0]].unique().numel() == 3


@pytest.mark.parametrize(("name", "overrides"), CONDITIONAL, ids=CIDS)
def test_samples_of_each_class_follow_that_class_and_completion_keeps_the_label(name, overrides):
    model = build(name, (2, 2), **overrides)
    every = binary_grid((2, 2))
    n = 3000
    mixed = torch.tensor([0, 2]).repeat(n)  # (2n,): rows of classes 0 and 2 in one batch
    drawn = model.sample(2 * n, mixed, generator=torch.Generator().manual_seed(0))
    for k in (0, 2):
        probs = model.log_prob(every, torch.full((16,), k)).exp()
        x = drawn[mixed == k]  # (n, 2, 2)
        freq = (x.reshape(n, 1, -1) == every.reshape(1, 16, -1)).all(-1).double().mean(0)
        se = (probs * (1 - probs) / n).sqrt()
        assert ((freq - probs).abs() <= 5 * se + 1e-9).all(), f"class {k}"
    one = model.sample(4, 1, generator=torch.Generator().manual_seed(1))  # one label for all
    ones = model.sample(4, torch.ones(4).long(), generator=torch.Generator().manual_seed(1))
    assert torch.equal(one, ones)
    labels = torch.arange(8) % 3
    x = model.sample(8, labels, generator=torch.Generator().manual_seed(2))
    assert torch.equal(x, model.sample(8, labels, generator=torch.Generator().manual_seed(2)))
    mask = torch.rand(x.shape, generator=torch.Generator().manual_seed(4)) < 0.5
    out = model.complete(x, mask, labels, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out[mask], x[mask]) and model.support.check(out).all()
    if one_order(model):  # exact: observe the first two dims
        obs = torch.tensor([[True, True], [False, False]])
        agrees = (every.flatten(1)[:, :2] == every[6].flatten()[:2]).all(-1)
        k = torch.tensor(1)
        probs = model.log_prob(every, k).masked_fill(~agrees, -math.inf).softmax(0)
        draws = model.complete(every[6:7].expand(n, 2, 2), obs, k, torch.Generator().manual_seed(1))
        freq = (draws.reshape(n, 1, -1) == every.reshape(1, 16, -1)).all(-1).double().mean(0)
        assert ((freq - probs).abs() <= 5 * (probs * (1 - probs) / n).sqrt() + 1e-9).all()


def test_categorical_made_sums_to_one_over_all_256_levels_in_every_class():
    model = build("made", (1, 1), hidden_sizes=(16,), head="categorical", num_classes=2)
    grid = torch.arange(256).view(-1, 1, 1)  # the class reaches the one dim directly
    per_class = torch.stack([model.log_prob(grid, k) for k in range(2)])  # (2, 256)
    torch.testing.assert_close(per_class.logsumexp(1).exp(), torch.ones(2, dtype=torch.float64))
    assert (per_class[0] - per_class[1]).abs().max() > 1e-2
    x = model.sample(6, torch.tensor([0, 1]).repeat(3), generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.long and model.support.check(x).all()


def test_nade_running_pass_and_sampler_equal_the_naive_ones_given_a_class():
    model = build("nade", (1, 7), hidden_size=5, num_classes=4)
    x = binary_grid((1, 7))[::9].flatten(1)  # (B, 7)
    c = torch.arange(len(x)) % 4
    bias = model.c + model.class_hidden[c]  # (B, H)
    naive = torch.stack(
        [
            model.b[d] + torch.relu(bias + x[:, :d] @ model.W[:, :d].T) @ model.V[d]
            for d in range(7)
        ],
        dim=1,
    )  # (B, 7)
    torch.testing.assert_close(model._outputs(x, c), naive)
    start = torch.zeros(20, 7, dtype=torch.float64)
    none = torch.zeros(20, 7, dtype=torch.bool)
    c = torch.arange(20) % 4
    fast = model._fill(start.clone(), none, c, torch.Generator().manual_seed(1), 0.7)
    slow = FixedOrderModel._fill(
        model, start.clone(), none, c, torch.Generator().manual_seed(1), 0.7
    )
    assert torch.equal(fast, slow)


@pytest.mark.parametrize(
    ("name", "overrides", "lr"),
    [
        ("fvsbn", {}, 3e-2),
        ("nade", {"hidden_size": 32}, 1e-2),
        ("made", {"hidden_sizes": (64,)}, 1e-2),
    ],
    ids=["fvsbn", "nade", "made"],
)
def test_class_conditional_training_on_digits_prefers_the_true_labels(
    name, overrides, lr, one_thread
):
    """p(x | true label) beats p(x | shuffled label) on the test set: the labels were used."""
    train_set = get("digits", "train", binarize="static")
    test_set = get("digits", "test", binarize="static")
    x, y = train_set.x.double(), train_set.y
    torch.manual_seed(0)
    model = dgm.create(name, (1, 8, 8), num_classes=10, **overrides).double()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    # 150 steps (was 300): at 150, seeds 0-2 (init, batches and shuffle), the shuffled
    # labels cost at least 5.98 nats more (> 2), nade the closest
    for step in range(150):
        model.training_step = step
        i = torch.randint(len(x), (64,), generator=g)
        loss = model.loss(x[i], y[i]).value
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    tx, ty = test_set.x.double(), test_set.y
    shuffled = ty[torch.randperm(len(ty), generator=g)]
    with torch.no_grad():
        true = -model.log_prob(tx, ty).mean().item()
        wrong = -model.log_prob(tx, shuffled).mean().item()
    print(f"{name}: test NLL {true:.2f} nats with the labels, {wrong:.2f} with shuffled ones")
    assert true < wrong - 2


def test_nade_defaults_to_relu_but_a_run_saved_before_the_option_stays_sigmoid(tmp_path):
    """config.json files written before ``activation`` existed lack it: they rebuild the
    sigmoid NADE they were trained as, with identical log_prob from the saved weights."""
    from dgm import run_dir as rd

    assert dgm.create("nade", (1, 4), hidden_size=3).config.activation == "relu"
    old = build("nade", (1, 4), hidden_size=3, activation="sigmoid")
    saved = {"model": "nade", "event_shape": [1, 4], "model_config": {"hidden_size": 3}}
    rd.save_weights(tmp_path / "w.safetensors", old, 0)
    again = rd.model_from_config(saved).double()
    rd.load_weights(tmp_path / "w.safetensors", again)
    assert again.config.activation == "sigmoid"
    x = binary_grid((1, 4))
    torch.testing.assert_close(again.log_prob(x), old.log_prob(x), rtol=0, atol=0)
    explicit = {**saved, "model_config": {"hidden_size": 3, "activation": "relu"}}
    assert rd.model_from_config(explicit).config.activation == "relu"
