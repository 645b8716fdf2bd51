"""Discrete Bayesian networks against enumeration: the joint is normalised, variable
elimination equals brute-force sums, ancestral draws follow the CPDs (χ² tests), the fit
is the smoothed counts, Chow–Liu recovers a known tree, and structure errors say what is
wrong."""

import itertools
import json

import pytest
import torch
from scipy.stats import chi2

import dgm
from dgm.models.classical.bayes_net import BayesNet

# a DAG with a v-structure, a chain and a node with two parents: a -> c <- b, c -> d, b -> e
PARENTS = {"a": [], "b": [], "c": ["a", "b"], "d": ["c"], "e": ["b"]}


def random_net(V=3, seed=0, parents=PARENTS):
    g = torch.Generator().manual_seed(seed)
    cpds = {}
    for name, ps in parents.items():
        logits = 2 * torch.randn((V,) * (len(ps) + 1), generator=g, dtype=torch.float64)
        cpds[name] = logits.softmax(-1)
    return BayesNet.from_parents(parents, num_categories=V, cpds=cpds), cpds


def every_x(net):
    V = net.config.num_categories
    return torch.tensor(list(itertools.product(range(V), repeat=net.num_dims)))


def test_the_joint_sums_to_one_and_is_the_product_of_the_cpds():
    net, cpds = random_net()
    every = every_x(net)  # (243, 5)
    lp = net.log_prob(every)
    torch.testing.assert_close(lp.logsumexp(0), torch.zeros((), dtype=torch.float64))
    a, b, c, d, e = every[7]
    by_hand = cpds["a"][a] * cpds["b"][b] * cpds["c"][a, b, c] * cpds["d"][c, d] * cpds["e"][b, e]
    torch.testing.assert_close(lp[7].exp(), by_hand)


def test_variable_elimination_equals_enumeration():
    net, _ = random_net(seed=1)
    every = every_x(net)
    p = net.log_prob(every).exp()  # (243,)
    cases = [(["a"], {"d": 2}), (["c", "e"], {"a": 0, "d": 1}), (["b"], {}), (["e", "a"], {"c": 2})]
    for query, evidence in cases:
        q = [net.names.index(v) for v in query]
        agree = torch.ones(len(every), dtype=torch.bool)
        for v, value in evidence.items():
            agree &= every[:, net.names.index(v)] == value
        brute = torch.zeros((3,) * len(q), dtype=torch.float64)
        for row, prob in zip(every[agree], p[agree], strict=True):
            brute[tuple(row[q])] += prob
        torch.testing.assert_close(net.query(query, evidence), brute / brute.sum())
    # log p(x_obs) sums out the missing variables: compare with the brute-force sums
    g = torch.Generator().manual_seed(3)
    x = net.sample(8, generator=g)
    mask = torch.rand(8, 5, generator=g) < 0.5
    agree = ((every[None] == x[:, None]) | ~mask[:, None]).all(-1)  # (8, 243)
    brute = (p[None] * agree).sum(-1).log()
    torch.testing.assert_close(net.log_prob_observed(x, mask), brute)


def test_barren_variables_are_left_out_of_elimination():
    # a variable that is neither kept nor observed, nor an ancestor of one, sums to 1:
    # elimination skips its CPD (pgmpy prunes the same way) and the numbers stay exact
    net, _ = random_net(seed=2)
    index = {n: i for i, n in enumerate(net.names)}
    flat = torch.zeros(1, 5, dtype=torch.long)
    observed = torch.zeros(1, 5, dtype=torch.bool)
    observed[0, index["d"]] = True  # p(a | d): a, b, c are ancestors of d; e is barren
    scopes = [vs for vs, _ in net._factors(flat, observed, (index["a"],))]
    cpds = {(*(index[p] for p in PARENTS[n]), index[n]) for n in "abcd"}
    assert sorted(scopes) == sorted([*cpds, (index["d"],)])  # 4 CPDs + d's evidence, no e
    nothing = torch.zeros_like(observed)
    assert [vs for vs, _ in net._factors(flat, nothing, (index["b"],))] == [(index["b"],)]
    # nothing observed in any row: log p(x_obs) = log 1
    x = net.sample(4, generator=torch.Generator().manual_seed(0))
    none = torch.zeros(4, 5, dtype=torch.bool)
    torch.testing.assert_close(net.log_prob_observed(x, none), torch.zeros(4, dtype=torch.float64))


def chi_square_ok(counts, expected):
    """Pearson's χ² over cells with expected counts: below the 0.999 quantile."""
    stat = ((counts - expected) ** 2 / expected).sum()
    return float(stat) < chi2.ppf(0.999, expected.numel() - 1), float(stat)


def test_ancestral_draws_follow_the_cpds():
    net, cpds = random_net(V=3, seed=2)
    n = 20000
    x = net.sample(n, generator=torch.Generator().manual_seed(0))
    for name, ps in PARENTS.items():
        cols = [net.names.index(v) for v in (*ps, name)]
        family = (x[:, cols] * 3 ** torch.arange(len(cols) - 1, -1, -1)).sum(-1)
        counts = torch.bincount(family, minlength=3 ** len(cols)).double()
        # expected = n p(parents) p(child | parents), with p(parents) from the exact joint
        marginal = net.query(list(ps), {}) if ps else torch.ones(())
        expected = n * (marginal[..., None] * cpds[name]).reshape(-1)
        ok, stat = chi_square_ok(counts, expected)
        assert ok, f"{name}: χ² = {stat:.1f}"


def test_fit_is_the_smoothed_counts():
    net, _ = random_net(seed=4)
    x = net.sample(500, generator=torch.Generator().manual_seed(1))
    parents = json.dumps(PARENTS)
    model = dgm.create("bayes_net", (5,), structure=parents, variables=tuple(PARENTS), alpha=0.5)
    model = model.double()
    metrics = model.fit_step([(x[:200], None), (x[200:], None)])
    a, b, c = 1, 2, 0
    rows = (x[:, 0] == a) & (x[:, 1] == b)
    theta = ((x[rows, 2] == c).sum() + 0.5) / (rows.sum() + 3 * 0.5)
    torch.testing.assert_close(model.cpd(2)[a, b, c].exp(), theta.double())
    theta = ((x[:, 1] == 2).sum() + 0.5) / (500 + 1.5)
    torch.testing.assert_close(model.cpd(1)[2].exp(), theta.double())
    torch.testing.assert_close(metrics["nll"], -model.log_prob(x).mean())


def test_chow_liu_recovers_a_known_tree_from_20k_samples():
    tree = {"0": [], "1": ["0"], "2": ["0"], "3": ["1"], "4": ["1"], "5": ["2"], "6": ["5"]}
    g = torch.Generator().manual_seed(7)
    cpds = {}
    for name, ps in tree.items():  # noisy copies of the parent: strong, unequal links
        if ps:
            keep = 0.5 + 0.4 * torch.rand((), generator=g, dtype=torch.float64)
            cpds[name] = keep * torch.eye(3, dtype=torch.float64) + (1 - keep) / 3
        else:
            cpds[name] = torch.tensor([0.3, 0.3, 0.4], dtype=torch.float64)
    truth = BayesNet.from_parents(tree, num_categories=3, cpds=cpds)
    x = truth.sample(20000, generator=torch.Generator().manual_seed(8))
    model = dgm.create("bayes_net", (7,)).double()  # structure=chow_liu by default
    fit = model.fit_step([(x, None)])
    edges = {frozenset((i, p)) for i, ps in enumerate(model.parents()) for p in ps}
    assert edges == {frozenset((int(k), int(p))) for k, ps in tree.items() for p in ps}
    assert float(fit["nll"]) == pytest.approx(-truth.log_prob(x).mean().item(), abs=0.01)
    loaded = dgm.create("bayes_net", (7,)).double()
    loaded.load_state_dict(model.state_dict())  # the learned tree is state, like the CPDs
    torch.testing.assert_close(loaded.log_prob(x[:50]), model.log_prob(x[:50]))


def test_a_structure_file_is_read(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"1": ["0"], "2": {"parents": ["1"], "cpd": [[0.5, 0.5]] * 2}}))
    model = dgm.create("bayes_net", (3,), structure=str(path), num_categories=2)
    assert model.parents() == [(), (0,), (1,)]
    assert model.ordering().tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("structure", "message"),
    [
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, r"cycle: (a|b|c) -> (a|b|c) -> (a|b|c) -> \1"),
        ({"a": ["a"]}, "cycle: a -> a"),
        ({"b": ["z"]}, "parent 'z', which is not a variable"),
        ({"z": []}, "variable 'z', which is not one of the variables"),
        ({"b": {"parents": [], "cpd": [0.5, 0.4]}}, r"CPD of 'b' sums to 0.9, not 1"),
        ({"c": {"parents": ["a"], "cpd": [[0.5, 0.5], [0.2, 0.7]]}}, "given a=1 sums to 0.9"),
        ({"c": {"parents": ["a"], "cpd": [0.5, 0.5]}}, r"shape \(2,\), expected \(2, 2\)"),
        ({"c": {"parents": [], "cpd": [1.5, -0.5]}}, "negative probabilities"),
    ],
)
def test_structure_errors_name_the_problem(structure, message):
    with pytest.raises(ValueError, match=message):
        dgm.create(
            "bayes_net",
            (3,),
            structure=json.dumps(structure),
            num_categories=2,
            variables=("a", "b", "c"),
        )


def test_bad_settings_and_queries_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not 'chow_liu', 'empty', inline JSON"):
        dgm.create("bayes_net", (3,), structure=str(tmp_path / "none.json"))
    with pytest.raises(ValueError, match="not valid JSON"):
        dgm.create("bayes_net", (3,), structure="{1: 2}")
    with pytest.raises(ValueError, match="give 3 distinct names"):
        dgm.create("bayes_net", (3,), variables=("a", "b"))
    net, _ = random_net(V=2)
    with pytest.raises(ValueError, match="unknown variable 'z'"):
        net.query(["z"])
    with pytest.raises(ValueError, match="cannot also be evidence"):
        net.query(["a"], {"a": 1})
    with pytest.raises(ValueError, match=r"--num-categories"):
        net.log_prob(torch.full((1, 5), 2))
    zero = BayesNet.from_parents({"a": [], "b": ["a"]}, num_categories=2, cpds={"a": [1.0, 0.0]})
    with pytest.raises(ValueError, match="probability 0"):
        zero.query(["b"], {"a": 1})
