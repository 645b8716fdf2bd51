"""Discrete graphical-model machinery for ``bayes_net``: reading a DAG (with optional
CPDs) from JSON, topological order and cycle reports, the Chow–Liu tree, and variable
elimination over log-space factors with a batch dimension.

A factor is ``(variables, table)``: a tuple of variable indices and a log-table of shape
(B, V, ..., V), one axis of size V per variable, B = 1 for factors shared by a batch.

References:
    Chow & Liu 1968, Approximating discrete probability distributions with dependence
    trees, IEEE Transactions on Information Theory 14(3).
    Zhang & Poole 1994, A simple approach to Bayesian network computations, Canadian AI.
    Koller & Friedman 2009, Probabilistic Graphical Models, chapter 9.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

Factor = tuple[tuple[int, ...], Tensor]
CPD_TOLERANCE = 1e-6  # how far a given CPD row may sum from 1


@dataclasses.dataclass(frozen=True)
class Structure:
    """A DAG over D variables: ``parents[i]`` are the indices of variable i's parents (in
    the order of its CPD's axes), ``cpds`` the tables given with it (probabilities of
    shape (V,) * len(parents[i]) + (V,), by variable index)."""

    names: tuple[str, ...]
    parents: tuple[tuple[int, ...], ...]
    cpds: dict[int, Tensor]


def read_structure(text: str) -> dict[str, Any]:
    """The JSON of a ``structure`` setting: inline JSON (starts with '{') or a file path."""
    text = text.strip()
    if text.startswith("{"):
        source, raw = "the inline structure", text
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"structure {text!r} is not 'chow_liu', 'empty', inline JSON nor a JSON file"
            )
        source, raw = str(path), path.read_text()
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source} is not valid JSON ({e})") from None
    if not isinstance(spec, dict):
        raise ValueError(
            f'{source} must be a JSON object {{"child": ["parent", ...], ...}}, '
            f"got {type(spec).__name__}"
        )
    return spec


def parse_structure(spec: dict[str, Any], names: tuple[str, ...], num_categories: int) -> Structure:
    """The DAG of ``spec``: {child: [parents]} or {child: {"parents": [...], "cpd": nested
    lists}}, by the variable ``names``; variables not listed have no parents. Raises
    ValueError naming the problem: an unknown variable or parent, a cycle, or a CPD of the
    wrong shape, with negative entries or rows that do not sum to 1."""
    index = {n: i for i, n in enumerate(names)}
    parents: list[tuple[int, ...]] = [() for _ in names]
    cpds: dict[int, Tensor] = {}
    V = num_categories
    for child, entry in spec.items():
        if child not in index:
            raise ValueError(
                f"structure names variable {child!r}, which is not one of the variables "
                f"{list(names)} (name them with --variables, or by index 0..{len(names) - 1})"
            )
        cpd = None
        if isinstance(entry, dict):
            unknown = set(entry) - {"parents", "cpd"}
            if unknown:
                raise ValueError(f"variable {child!r}: unknown keys {sorted(unknown)}")
            entry, cpd = entry.get("parents", []), entry.get("cpd")
        if not isinstance(entry, list) or not all(isinstance(p, str) for p in entry):
            raise ValueError(f"variable {child!r}: parents must be a list of names, got {entry!r}")
        for p in entry:
            if p not in index:
                raise ValueError(
                    f"variable {child!r} has parent {p!r}, which is not a variable; "
                    f"variables: {list(names)}"
                )
        if len(set(entry)) != len(entry):
            raise ValueError(f"variable {child!r} lists a parent twice: {entry}")
        i = index[child]
        parents[i] = tuple(index[p] for p in entry)
        if cpd is not None:
            cpds[i] = check_cpd(child, cpd, [names[p] for p in parents[i]], V)
    topological_order(parents, names)  # raises on a cycle
    return Structure(tuple(names), tuple(parents), cpds)


def check_cpd(name: str, cpd: Any, parent_names: list[str], V: int) -> Tensor:
    """A given CPD as a float64 tensor (V,) * k + (V,), checked: shape, >= 0, rows sum to 1."""
    try:
        table = torch.tensor(cpd, dtype=torch.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"CPD of {name!r} is not a nested list of numbers ({e})") from None
    shape = (V,) * (len(parent_names) + 1)
    if table.shape != shape:
        axes = ", ".join([*parent_names, name])
        raise ValueError(
            f"CPD of {name!r} has shape {tuple(table.shape)}, expected {shape} (axes: {axes}, "
            f"each with {V} values)"
        )
    if not bool((table >= 0).all()):
        raise ValueError(f"CPD of {name!r} has negative probabilities")
    sums = table.sum(-1)
    bad = (sums - 1).abs() > CPD_TOLERANCE
    if bool(bad.any()):
        row = tuple(int(v) for v in bad.nonzero()[0])
        given = ", ".join(f"{p}={v}" for p, v in zip(parent_names, row, strict=True))
        where = f" given {given}" if given else ""
        raise ValueError(
            f"CPD of {name!r}{where} sums to {float(sums[row]):.6g}, not 1: each row of "
            "p(child | parents) must sum to 1"
        )
    return table


def topological_order(parents: list[tuple[int, ...]] | tuple, names: tuple[str, ...]) -> list[int]:
    """Parents before children, smallest index first among the ready ones; a cycle raises
    ValueError naming it (A -> B -> A)."""
    D = len(parents)
    children: list[list[int]] = [[] for _ in range(D)]
    waiting = [len(p) for p in parents]
    for i, ps in enumerate(parents):
        for p in ps:
            children[p].append(i)
    ready = sorted(i for i in range(D) if waiting[i] == 0)
    order: list[int] = []
    while ready:
        i = ready.pop(0)
        order.append(i)
        for ch in children[i]:
            waiting[ch] -= 1
            if waiting[ch] == 0:
                ready.append(ch)
        ready.sort()
    if len(order) < D:
        left = set(range(D)) - set(order)
        path, node = [], min(left)
        while node not in path:  # follow parents inside the cycle until one repeats
            path.append(node)
            node = next(p for p in parents[node] if p in left)
        cycle = [*path[path.index(node) :], node][::-1]  # parent -> child -> ...
        raise ValueError(
            "structure has a cycle: "
            + " -> ".join(names[i] for i in cycle)
            + "; a Bayesian network must be a DAG (remove one of these edges)"
        )
    return order


def mutual_information(pair_counts: Tensor) -> Tensor:
    """Empirical mutual information I(x_i; x_j) in nats, (D, D), from pair counts
    (D, D, V, V) (``pair_counts[i, j, u, v]`` = #{x_i = u, x_j = v}); the diagonal is 0."""
    n = pair_counts[0, 0].sum()
    joint = pair_counts / n  # (D, D, V, V)
    single = joint.diagonal(dim1=0, dim2=1).diagonal(dim1=0, dim2=1)  # (D, V): p(x_i = u)
    outer = single[:, None, :, None] * single[None, :, None, :]  # (D, D, V, V)
    terms = torch.where(joint > 0, joint * (joint / outer).log(), torch.zeros_like(joint))
    mi = terms.sum((-1, -2))
    return mi.fill_diagonal_(0.0)


def chow_liu_parents(pair_counts: Tensor) -> list[int]:
    """The maximum-mutual-information spanning tree (Chow & Liu 1968) rooted at variable 0,
    by Prim's algorithm: the parent of each variable, −1 for the root."""
    mi = mutual_information(pair_counts)
    D = len(mi)
    parent = [-1] * D
    in_tree = torch.zeros(D, dtype=torch.bool)
    in_tree[0] = True
    best, best_from = mi[0].clone(), torch.zeros(D, dtype=torch.long)
    for _ in range(D - 1):
        j = int(best.masked_fill(in_tree, -torch.inf).argmax())
        parent[j] = int(best_from[j])
        in_tree[j] = True
        closer = mi[j] > best
        best = torch.where(closer, mi[j], best)
        best_from = torch.where(closer, torch.full_like(best_from, j), best_from)
    return parent


# -- variable elimination ------------------------------------------------------------------


def align(factor: Factor, target: tuple[int, ...]) -> Tensor:
    """The factor's table with its axes in ``target`` order and size-1 axes for the
    variables of ``target`` it lacks: (B, ...) broadcastable against the others."""
    variables, table = factor
    order = sorted(range(len(variables)), key=lambda a: target.index(variables[a]))
    table = table.permute(0, *(1 + a for a in order))
    shape = [table.shape[0]] + [
        table.shape[1 + order.index(variables.index(v))] if v in variables else 1 for v in target
    ]
    return table.reshape(shape)


def eliminate(factors: list[Factor], keep: tuple[int, ...]) -> Tensor:
    """Σ over every variable not in ``keep`` of the product of the factors, in log space:
    a log-table (B, V, ..., V) over ``keep`` in that order (unnormalised). Variables are
    summed out greedily, the one whose combined factor is smallest first."""
    factors = list(factors)
    V = next((t.shape[1] for vs, t in factors if vs), 1)
    while True:
        free = {v for vs, _ in factors for v in vs} - set(keep)
        if not free:
            break

        scopes = [vs for vs, _ in factors]
        v = min(sorted(free), key=lambda v: len({u for vs in scopes if v in vs for u in vs}))
        involved = [f for f in factors if v in f[0]]
        factors = [f for f in factors if v not in f[0]]
        union = tuple(sorted({u for vs, _ in involved for u in vs}))
        total = sum(align(f, union) for f in involved)
        rest = tuple(u for u in union if u != v)
        factors.append((rest, total.logsumexp(1 + union.index(v))))  # type: ignore[union-attr]
    B = max(t.shape[0] for _, t in factors)
    first = factors[0][1]
    out = first.new_zeros((B,) + (1,) * len(keep))
    for f in factors:
        out = out + align(f, keep)
    return out.expand((B,) + (V,) * len(keep))
