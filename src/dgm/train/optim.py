"""The optimisers and the weight average the trainer keeps.

One AdamW per phase, fused where torch has a kernel for the parameters, with per-phase
settings from ``param_groups()``; and an exponential moving average of the weights.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from dgm.model import GenerativeModel
from dgm.train.config import TrainConfig


def build_optimizer(
    phase: str, entries: list[Any], config: TrainConfig, model: nn.Module | None = None
) -> torch.optim.AdamW:
    """AdamW over one phase's ``param_groups()`` entry: parameters, or torch-style group
    dicts whose "lr", "betas" and "weight_decay" override ``config``'s. Every group keeps
    its own base lr as "initial_lr", which the schedule scales. Fused where torch has a
    kernel for the parameters' devices and dtypes, else torch's default (foreach where
    it can).

    With ``config.weight_decay_on == "matrices"`` a group with weight decay keeps it on
    its matrices only (``decays``; the embedding tables of ``model`` excluded) and its
    other parameters go into a twin group, listed after it, with weight decay 0."""
    entries = list(entries)
    dicts = [isinstance(e, dict) for e in entries]
    if not entries or (any(dicts) and not all(dicts)):
        raise ValueError(
            f"param_groups()[{phase!r}] must be a non-empty list of parameters or of "
            '{"params": [...], "lr": ...} dicts, not a mix'
        )
    if all(dicts):
        if any("params" not in g for g in entries):
            raise ValueError(f'every group dict of param_groups()[{phase!r}] needs "params"')
        groups = [{**g, "params": list(g["params"])} for g in entries]
    else:
        groups = [{"params": entries}]
    if config.weight_decay_on == "matrices":
        tables = embedding_tables(model) if model is not None else set()
        groups = [part for g in groups for part in _split_decay(g, config, tables)]
    fused = all(_has_fused_adamw(p.device.type, p.dtype) for g in groups for p in g["params"])
    opt = torch.optim.AdamW(
        groups,
        lr=config.lr,
        betas=tuple(config.adam_betas),
        weight_decay=config.weight_decay,
        fused=fused or None,
    )
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]
    return opt


def embedding_tables(model: nn.Module) -> set[int]:
    """The ids of ``model``'s embedding tables (the weights of its ``nn.Embedding`` and
    ``nn.EmbeddingBag`` modules): rows looked up, not a linear map, so not decayed."""
    return {
        id(p)
        for m in model.modules()
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag))
        for p in m.parameters(recurse=False)
    }


def decays(p: Tensor, tables: set[int]) -> bool:
    """Whether weight decay shrinks ``p`` under ``weight_decay_on="matrices"``: a weight
    of at least 2 dimensions (a linear or convolution weight) that is not an embedding
    table; biases, norm scales and shifts (1-D) and scalars are left alone (Loshchilov &
    Hutter 2019, arXiv:1711.05101, decay the weights; nanoGPT and minGPT split so)."""
    return p.dim() >= 2 and id(p) not in tables


def _split_decay(group: dict[str, Any], config: TrainConfig, tables: set[int]) -> list[dict]:
    """``group`` as one or two groups: its decayed parameters with its weight decay, the
    rest with none. A group without weight decay stays as it is."""
    if group.get("weight_decay", config.weight_decay) == 0:
        return [group]
    kept = [p for p in group["params"] if decays(p, tables)]
    spared = [p for p in group["params"] if not decays(p, tables)]
    if not spared:
        return [group]
    if not kept:
        return [{**group, "weight_decay": 0.0}]
    return [{**group, "params": kept}, {**group, "params": spared, "weight_decay": 0.0}]


@functools.cache
def _has_fused_adamw(device_type: str, dtype: torch.dtype) -> bool:
    """Whether torch's fused AdamW kernel runs for this device type and dtype: it checks
    only at the first step, so take one step on a one-element tensor."""
    try:
        p = torch.zeros(1, device=device_type, dtype=dtype, requires_grad=True)
        p.grad = torch.ones_like(p)
        torch.optim.AdamW([p], fused=True).step()
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        return False
    return True


class WeightAverage:
    """An exponential moving average of a model's parameters, updated after each training
    step: ema <- decay * ema + (1 - decay) * param, one fused lerp over all of them.
    Buffers are not averaged: ``state_dict`` takes the model's current ones."""

    def __init__(self, model: GenerativeModel, decay: float) -> None:
        self.model, self.decay = model, decay
        self.params = list(model.parameters())
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.shadow, self.params, 1.0 - self.decay)

    def state_dict(self) -> dict[str, Tensor]:
        """The model's state dict with the averages in place of the parameters (tied
        parameters under every name they have)."""
        index = {id(p): i for i, p in enumerate(self.params)}
        return {
            k: self.shadow[index[id(v)]] if id(v) in index else v.detach()
            for k, v in self.model.state_dict(keep_vars=True).items()
        }

    @torch.no_grad()
    def load(self, tensors: dict[str, Tensor]) -> None:
        """Restore the averages from a state dict written by ``state_dict``."""
        index = {id(p): i for i, p in enumerate(self.params)}
        for k, v in self.model.state_dict(keep_vars=True).items():
            if id(v) in index:
                self.shadow[index[id(v)]].copy_(tensors[k])

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The averages in the model's parameters for the duration, the raw values after."""
        with torch.no_grad():
            raw = [p.detach().clone() for p in self.params]
            torch._foreach_copy_(self.params, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, raw)
