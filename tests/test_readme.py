"""The README's model-author example is real code: it registers, passes the contract
checks that apply to it, and trains."""

import re
from pathlib import Path

import pytest
import torch

import dgm
from dgm.registry import unregister

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def example_model():
    text = README.read_text()
    block = re.search(r"<!-- model-example:start -->\n```python\n(.*?)```", text, re.S).group(1)
    exec(compile(block, "README example", "exec"), {"__name__": "readme_example"})
    yield "diag_normal"
    unregister("diag_normal")


def test_the_readme_model_registers_samples_and_trains(example_model, tmp_path):
    model = dgm.create(example_model, (2,)).double()
    x = model.sample(5, generator=torch.Generator().manual_seed(0), temperature=0.5)
    assert x.shape == (5, 2) and model.log_prob(x).shape == (5,)
    with pytest.raises(ValueError, match="has no field"):
        model.sample(2, temprature=0.5)
    from dgm.data import DataConfig
    from dgm.train import TrainConfig, train

    config = TrainConfig(steps=300, batch_size=256, lr=0.05, eval_every=0, device="cpu")
    trained, _ = train(example_model, DataConfig("moons"), tmp_path / "r", config, progress=False)
    data = dgm.data.get("moons", "train").x
    torch.testing.assert_close(trained.loc.detach(), data.mean(0), atol=0.05, rtol=0)
