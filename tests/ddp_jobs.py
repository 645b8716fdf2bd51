"""What test_distributed's torchrun script trains, in one place: the script runs it on two
gloo ranks, and the test runs the one-process reference in its own process (a third
process starting torch would cost seconds and prove nothing more)."""

import torch

from dgm.data import TensorData
from dgm.train import Trainer
from helpers import DiagonalGaussian, GaussianConfig, quiet_config


def data() -> TensorData:
    """400 points of N(1, 0.7^2 I) in 3 dimensions, in the default dtype."""
    g = torch.Generator().manual_seed(0)
    return TensorData(torch.randn(400, 3, generator=g) * 0.7 + 1.0)


def fit(model: torch.nn.Module, batch: int, steps: int, **kw) -> int:
    """Train ``model`` quietly on ``data()`` with batches of ``batch`` per rank; its rank."""
    cfg = quiet_config(
        steps=steps,
        batch_size=batch,
        lr=0.05,
        warmup_steps=3,
        log_every=0,
        checkpoint_every=0,
        **kw,
    )
    trainer = Trainer(model, data(), None, cfg, progress=False)
    trainer.fit()
    return trainer.rank


def gaussian(batch: int) -> tuple[int, dict[str, torch.Tensor]]:
    """The deterministic job, in float64 (2 ranks x 16 must equal 1 x 32): its rank and
    the trained state."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        model = DiagonalGaussian((3,), GaussianConfig())
        rank = fit(model, batch, 25, grad_clip=1.0)
    finally:
        torch.set_default_dtype(dtype)
    return rank, {k: v.clone() for k, v in model.state_dict().items()}
