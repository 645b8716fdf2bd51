"""Memory a training run will need, estimated before anything is allocated, so that a
model too large for the machine is refused in one line instead of swapping it to a halt.

The estimate is simple and says what it counts:

- parameters and buffers, counted on PyTorch's ``meta`` device (shapes without storage,
  so a 160 GB layer costs nothing to count);
- gradients (one copy of the parameters) and Adam's two moments (two copies);
- activations: the sizes of every module's outputs in one ``loss`` call on a meta batch
  of ``batch_size`` examples (kept for the backward pass), when the model's forward pass
  runs on the meta device; otherwise activations are left out and the estimate says so.
  The trace costs seconds the first time a process runs a meta operation (PyTorch loads
  its meta kernels), so it runs only when activations could matter: when
  ``ACTIVATION_RATIO`` copies of the input batch would exceed the memory available.

It is a lower bound of sorts (no allocator slack, no temporaries outside modules such
as attention scores from ``F.scaled_dot_product_attention``); the check refuses only
what clearly cannot fit: an estimate above the memory available now (``MemAvailable`` of
/proc/meminfo, or the free CUDA memory on a GPU). Models whose constructor reads values
(e.g. ``maf``, ``ddpm`` today) cannot be built on the meta device and are not checked.

Example:
    >>> est = estimate_training("vae", (1, 8, 8), {"latent_dim": 2}, batch_size=32)
    >>> est.parameters > 0 and est.total_bytes > est.parameter_bytes
    True
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

GIB = 2**30
OPTIMIZER_COPIES = 3  # a gradient and Adam's two moments per parameter
# Activations are traced when this many copies of the input batch exceed the available
# memory: dgm's models keep ~10-5000 input-sized tensors (PixelCNN on 28x28: ~1300; GPT at
# T = 1000: ~5000, growing with T), so below it they cannot be what does not fit.
ACTIVATION_RATIO = 10_000


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training run needs, by part; ``activation_bytes`` is None when the forward
    pass could not be traced on the meta device (then it is not in ``total_bytes``)."""

    parameters: int  # number of parameters
    parameter_bytes: int  # parameters and buffers
    optimizer_bytes: int  # gradients and Adam's moments
    activation_bytes: int | None  # module outputs of one loss call at the batch size
    working_bytes: int  # what the model says a step needs besides (e.g. a fit's counts)
    batch_size: int

    @property
    def total_bytes(self) -> int:
        parts = self.parameter_bytes + self.optimizer_bytes + self.working_bytes
        return parts + (self.activation_bytes or 0)

    def describe(self) -> str:
        """One clause: the total in GiB and its parts."""
        parts = [
            f"{self.parameters:,} parameters and buffers {gib(self.parameter_bytes)}",
            f"gradients and Adam state {gib(self.optimizer_bytes)}",
        ]
        if self.activation_bytes is None:
            parts.append("activations not estimated")
        else:
            parts.append(f"activations at batch {self.batch_size} {gib(self.activation_bytes)}")
        if self.working_bytes:
            parts.append(f"working tables {gib(self.working_bytes)}")
        return f"about {gib(self.total_bytes)} ({', '.join(parts)})"


def gib(n: float) -> str:
    """Bytes as GiB with two decimals."""
    return f"{n / GIB:.2f} GiB"


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory free for a new allocation now: free CUDA memory on a GPU; on the CPU
    ``MemAvailable`` of /proc/meminfo (Linux), else the physical pages os.sysconf reports.
    None when neither is known."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def estimate_training(
    name: str,
    event_shape: tuple[int, ...],
    config: dict[str, Any],
    batch_size: int,
    *,
    activations: bool = True,
) -> MemoryEstimate | None:
    """The memory to train registered model ``name`` with ``config`` on examples of
    ``event_shape`` at ``batch_size`` (activations only with ``activations``); None when
    the model cannot be built on the meta device (its constructor needs real values)."""
    from dgm.registry import create

    try:
        with torch.device("meta"):
            model = create(name, event_shape, **config)
    except ValueError:
        raise  # the config's own complaint, with its fix
    except Exception:  # a constructor that reads values cannot be counted for free
        return None
    tensors = [*model.parameters(), *model.buffers()]
    count = sum(t.numel() for t in tensors)
    param_bytes = sum(t.numel() * t.element_size() for t in tensors)
    trained = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return MemoryEstimate(
        parameters=count,
        parameter_bytes=param_bytes,
        optimizer_bytes=OPTIMIZER_COPIES * trained,
        activation_bytes=_activation_bytes(model, event_shape, batch_size) if activations else None,
        working_bytes=model.working_memory_bytes(batch_size),
        batch_size=batch_size,
    )


def _activation_bytes(model: Any, event_shape: tuple[int, ...], batch_size: int) -> int | None:
    """Bytes of every module output of one ``loss`` call on a meta batch; None when the
    forward pass does not run on the meta device."""
    total = 0

    def count(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        for t in outputs:
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()

    dtype = torch.long if model.integer_data else torch.float32
    hooks = [m.register_forward_hook(count) for m in model.modules()]
    try:
        x = torch.zeros((batch_size, *event_shape), dtype=dtype, device="meta")
        model.train()
        model.check_values = False  # value checks need values: the meta batch has none
        for phase in model.phases:
            model.loss(x, None, phase=phase)
    except Exception:  # data-dependent control flow (.item(), checks on values)
        return None
    finally:
        for h in hooks:
            h.remove()
    return total


def check_training_memory(
    name: str,
    event_shape: tuple[int, ...],
    config: dict[str, Any],
    batch_size: int,
    device: torch.device | str = "cpu",
) -> MemoryEstimate | None:
    """Refuse (ValueError) a run whose estimate exceeds the memory available on
    ``device``, naming both in GiB and the ways out; returns the estimate otherwise."""
    free = available_bytes(device)
    if free is None:
        return None
    input_bytes = batch_size * math.prod(event_shape) * 8  # int64 tokens at most
    trace = input_bytes * ACTIVATION_RATIO > free
    estimate = estimate_training(name, event_shape, config, batch_size, activations=trace)
    if estimate is None or estimate.total_bytes <= free:
        return estimate
    where = "free on the GPU" if torch.device(device).type == "cuda" else "available"
    raise ValueError(
        f"training {name} with these options needs {estimate.describe()}, more than the "
        f"{gib(free)} {where}: make the model smaller (its size flags) or lower "
        "--batch-size, or pass --force to try anyway"
    )


__all__ = [
    "MemoryEstimate",
    "available_bytes",
    "check_training_memory",
    "estimate_training",
    "gib",
]
