"""The flows' batch normalisation keeps running statistics that the evaluation density is
built from: both the running mean and the running variance must be the moving averages of
the batches' own statistics, or eval ``log_prob`` is wrong (or NaN) while the training
loss, which uses the batch statistics, looks fine."""

import math

import torch

import dgm
from dgm.models.flows.transforms import BatchNormFlow, batch_statistics


def test_running_mean_and_variance_are_the_moving_averages_of_the_batch_statistics():
    """After each training batch, running ← (1 − m) running + m · batch statistic, with the
    batch's mean and its variance (1/N, over batch and spatial positions), per channel;
    after many batches of N(2, 3²) they are about 2 and 9."""
    g = torch.Generator().manual_seed(0)
    for shape in ((64, 3), (16, 2, 3, 3)):
        bn = BatchNormFlow(shape[1], momentum=0.1).double().train()
        mean, var = torch.zeros(shape[1], dtype=torch.float64), torch.ones(shape[1])
        var = var.double()
        for _ in range(60):
            x = 3 * torch.randn(shape, generator=g, dtype=torch.float64) + 2
            dims = [0, *range(2, len(shape))]
            with batch_statistics(bn):
                bn(x)
            mean = 0.9 * mean + 0.1 * x.mean(dims)
            var = 0.9 * var + 0.1 * x.var(dims, correction=0)
            torch.testing.assert_close(bn.running_mean, mean)
            torch.testing.assert_close(bn.running_var, var)
        assert (bn.running_mean - 2).abs().max() < 0.5
        assert (bn.running_var - 9).abs().max() < 2.0
        bn.eval()  # eval: the running statistics standardise fresh data of the same law
        x = 3 * torch.randn(4000, *shape[1:], generator=g, dtype=torch.float64) + 2
        z, log_det = bn(x)
        assert abs(z.mean().item()) < 0.2 and abs(z.std().item() - 1) < 0.2
        spatial = math.prod(shape[2:])
        expected = -0.5 * spatial * (bn.running_var + bn.eps).log().sum()
        torch.testing.assert_close(log_det, expected.expand(len(x)))
        torch.testing.assert_close(bn.inverse(z), x)


def test_a_flow_with_batch_norm_is_a_normalised_density_in_eval_after_training():
    """MAF with batch norm, trained 30 steps (batch statistics, running ones updated), then
    in eval: log_prob is finite, integrates to 1 over a 2-d grid, and equals the base
    log-density of the flow's output plus its log-det computed from the running
    statistics."""
    torch.manual_seed(0)
    model = dgm.create("maf", (2,), num_transforms=2, hidden_sizes=(8,), batch_norm=True)
    model = model.double().train()
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        x = torch.randn(64, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 0.5]) + 1
        loss = model.loss(x).value
        opt.zero_grad()
        loss.backward()
        opt.step()
    layers = [m for m in model.modules() if isinstance(m, BatchNormFlow)]
    assert layers and all((m.running_var != 1).all() for m in layers)
    model.eval()
    grid = torch.linspace(-15, 17, 321, dtype=torch.float64)
    xx = torch.cartesian_prod(grid, grid)  # (G², 2)
    with torch.no_grad():
        lp = model.log_prob(xx)
    assert torch.isfinite(lp).all()
    total = torch.trapezoid(torch.trapezoid(lp.exp().view(321, 321), grid), grid)
    assert abs(total.item() - 1) < 0.02, f"eval density integrates to {total.item():.3f}"
