"""An endless, resumable stream of training batches.

Each epoch's order comes from ``DistributedSampler`` (seeded by seed + epoch, sharded by
rank), so a run is repeatable, a resumed run picks up at the same (epoch, position), and
N processes each see a disjoint shard whose union is the single-process batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from dgm.data.dataset import Batch, take


class BatchStream:
    def __init__(
        self,
        data: Dataset,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        if len(data) < batch_size * world_size:  # type: ignore[arg-type]
            raise ValueError(
                f"the training data has {len(data)} examples, fewer than one batch "  # type: ignore[arg-type]
                f"({batch_size} x {world_size} processes): lower --batch-size"
            )
        self.data = data
        self.batch_size = batch_size
        self.sampler = DistributedSampler(
            data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.device = torch.device(device)
        # draws of dynamic binarization; its state is part of the checkpoint
        self.generator = torch.Generator(self.device).manual_seed(seed * 1000 + rank)
        self.epoch = 0
        self.position = 0
        self._order = self._epoch_order()

    def _epoch_order(self) -> Tensor:
        self.sampler.set_epoch(self.epoch)
        return torch.tensor(list(self.sampler), dtype=torch.long)

    def next(self) -> Batch:
        """The next batch (x, y, context) on the stream's device; a short tail of an epoch
        is dropped."""
        if self.position + self.batch_size > len(self._order):
            self.epoch += 1
            self.position = 0
            self._order = self._epoch_order()
        index = self._order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.gather(index)

    def gather(self, index: Tensor) -> Batch:
        return take(self.data, index, self.device, self.generator)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.generator.set_state(state["generator"])
        self._order = self._epoch_order()
