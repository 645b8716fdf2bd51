"""The training metrics between two log lines, summed on the device: one add per call and
one host sync per log (the trainer's step never waits on a ``.item()`` for them)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class MetricSums:
    """Sums of each call's scalar metrics since the last ``means()``, in float32.

    One call's metrics are stacked in one tensor and added to the sum of the calls with the
    same metric names; ``means()`` divides each by its number of calls, so a phase listed k
    times in ``model.phases`` logs the mean of its k calls, not their sum.

    Example:
        >>> sums = MetricSums()
        >>> sums.add("", {"loss": torch.tensor(1.0), "nll": 3.0})
        >>> sums.add("", {"loss": torch.tensor(2.0), "nll": 5.0})
        >>> bool(sums)
        True
        >>> sums.means()
        {'loss': 1.5, 'nll': 4.0}
        >>> bool(sums)  # emptied by means()
        False
        >>> sums.add("", {"a": 1.0, "b": 2.0})  # a metric in two groups: over all its calls
        >>> sums.add("", {"a": 3.0})
        >>> sums.add("", {"a": 5.0})
        >>> sums.means()
        {'a': 3.0, 'b': 2.0}
    """

    def __init__(self) -> None:
        # metric names (one call's, in order) -> their stacked sums and the number of calls
        self._sums: dict[tuple[str, ...], tuple[Tensor, int]] = {}

    def __bool__(self) -> bool:
        """Whether any call was added since the last ``means()``."""
        return bool(self._sums)

    def add(self, prefix: str, metrics: dict[str, Any]) -> None:
        """Add one call's metrics, each named ``prefix/name`` (``name`` without a prefix)."""
        keys = tuple(f"{prefix}/{k}" if prefix else k for k in metrics)
        with torch.no_grad():  # no graph through the loss: no detach per value
            stacked = torch.stack(  # (number of metrics,)
                [torch.as_tensor(v).float().reshape(()) for v in metrics.values()]
            )
        if keys in self._sums:
            total, count = self._sums[keys]
            self._sums[keys] = (total.add_(stacked), count + 1)
        else:
            self._sums[keys] = (stacked, 1)

    def means(self) -> dict[str, float]:
        """Each metric's mean over its calls, then empty (one host sync per group of
        metrics); a metric in several groups is averaged over all of them."""
        sums: dict[str, Tensor] = {}
        counts: dict[str, int] = {}
        for keys, (total, count) in self._sums.items():
            for key, value in zip(keys, total.unbind(), strict=True):
                sums[key] = sums[key] + value if key in sums else value
                counts[key] = counts.get(key, 0) + count
        self._sums = {}
        return {k: (v / counts[k]).item() for k, v in sums.items()}
