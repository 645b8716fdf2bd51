"""``TensorData.batch`` gathers rows the way ``x[index]`` does, whichever path it takes: a
list of positions (index_select on the CPU), negative positions from the end, a
position past the end refused, and other index kinds (a mask, 2-D positions)."""

from __future__ import annotations

import pytest
import torch

from dgm.data.dataset import TensorData


@pytest.fixture()
def data() -> TensorData:
    x = torch.arange(5 * 6, dtype=torch.float32).view(5, 1, 2, 3)
    return TensorData(x, torch.arange(5) * 10, context=-torch.arange(5 * 2).view(5, 2))


@pytest.mark.parametrize(
    "index",
    [
        torch.tensor([3, 0, 3, 4]),
        torch.tensor([3, 0], dtype=torch.int32),
        torch.tensor([-1, 2, -5]),
        torch.tensor([[1, 2], [0, 4]]),
        torch.tensor([True, False, True, False, True]),
    ],
    ids=["positions", "int32", "negative", "2-d", "mask"],
)
def test_batch_is_x_of_index(data: TensorData, index: torch.Tensor) -> None:
    b = data.batch(index)
    torch.testing.assert_close(b.x, data.x[index], rtol=0, atol=0)
    torch.testing.assert_close(b.y, data.y[index], rtol=0, atol=0)
    torch.testing.assert_close(b.context, data.context[index], rtol=0, atol=0)


@pytest.mark.parametrize("position", [5, -6])
def test_a_position_outside_the_data_is_refused(data: TensorData, position: int) -> None:
    with pytest.raises(IndexError):
        data.batch(torch.tensor([0, position]))
