"""Several processes (GPUs or machines) through PyTorch's own engine.

Launched with ``torchrun --nproc_per_node N -m dgm train ...``: each process reads RANK,
WORLD_SIZE and LOCAL_RANK from the environment, joins a process group (NCCL on CUDA, gloo
on the CPU), wraps the model in DistributedDataParallel and trains on its shard of each
epoch. Only rank 0 writes files.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from dgm.model import GenerativeModel, Loss


def launched() -> bool:
    """True when started by torchrun (or any launcher that sets WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group if launched distributed; returns (rank, world_size, device)."""
    if not launched():
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def teardown() -> None:
    """Leave the process group. Collect garbage first: a DDP wrapper kept alive by a
    reference cycle also holds the group, whose gloo threads should stop now rather
    than during interpreter shutdown."""
    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


class LossModule(nn.Module):
    """Routes DDP's forward to ``model.loss`` so gradients are all-reduced for every phase."""

    def __init__(self, model: GenerativeModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, c: Tensor | None, *, phase: str) -> Loss:
        return self.model.loss(x, c, phase=phase)


def wrap(model: GenerativeModel, device: torch.device) -> nn.Module:
    """DDP around the model's loss; multi-phase models leave parameters unused per phase."""
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(
        LossModule(model), device_ids=ids, find_unused_parameters=len(set(model.phases)) > 1
    )


def gather(obj: Any, world_size: int) -> list[Any]:
    """``obj`` from every rank (a list in rank order); just ``[obj]`` in one process."""
    if world_size == 1:
        return [obj]
    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(world_size: int) -> None:
    if world_size > 1:
        dist.barrier()
