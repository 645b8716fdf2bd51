"""The peer of ``benchmarks.side_by_side_diffusion``: a DDPM as the standard diffusers code
builds it. It has a ``UNet2DModel`` and the ``DDPMScheduler``/``DDIMScheduler`` on dgm's
schedule (T = 1000 linear β's from 1e-4 to 0.02), the diffusers training loss, and the
diffusers pipeline's sampling loop. ``DiffusersEps`` lets dgm's bound code evaluate the
diffusers U-Net.

diffusers is a bench-only extra, imported inside each function, never a dgm dependency.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TIMESTEPS = 1000
BETA_START, BETA_END = 1e-4, 0.02  # Ho et al.'s linear schedule at T = 1000


def diffusers_unet(shape: tuple[int, ...], channels: int) -> nn.Module:
    """diffusers' ``UNet2DModel`` of about the parameter count of ``dgm_model``'s U-Net."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=shape[-1],
        in_channels=shape[0],
        out_channels=shape[0],
        block_out_channels=(channels, channels, 2 * channels),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=None,  # one head per attention layer, as dgm's
    )


def diffusers_schedulers() -> tuple[Any, Any]:
    """diffusers' DDPM (training noise, ancestral sampling with σ_t² = β_t) and DDIM
    schedulers on dgm's schedule, x̂_0 clipped to [−1, 1] as dgm does for level data."""
    from diffusers import DDIMScheduler, DDPMScheduler

    schedule = {
        "num_train_timesteps": TIMESTEPS,
        "beta_schedule": "linear",
        "beta_start": BETA_START,
        "beta_end": BETA_END,
        "clip_sample": True,
        "clip_sample_range": 1.0,
    }
    ddpm = DDPMScheduler(**schedule, variance_type="fixed_large")
    ddim = DDIMScheduler(**schedule, set_alpha_to_one=True, timestep_spacing="trailing")
    return ddpm, ddim


def diffusers_loss(unet: nn.Module, scheduler: Any, x0: Tensor) -> Tensor:
    """The standard diffusers training loss at x0 (B, C, H, W) on [−1, 1]: t uniform, then ε
    (from the global generator, in dgm's ``DDPM.loss`` order), ‖ε − ε_θ(x_t, t)‖² mean."""
    t = torch.randint(scheduler.config.num_train_timesteps, (len(x0),), device=x0.device)
    noise = torch.randn_like(x0)
    noisy = scheduler.add_noise(x0, noise, t)  # (B, C, H, W) x_t
    return F.mse_loss(unet(noisy, t).sample, noise)


@torch.no_grad()
def diffusers_sample(
    unet: nn.Module, scheduler: Any, x_T: Tensor, steps: int, generator: torch.Generator
) -> Tensor:
    """x_T (n, C, H, W) denoised by ``scheduler`` (DDPM or DDIM) over ``steps`` steps, the
    diffusers pipeline loop on [−1, 1]; DDIM at η = 0 with the clipped x̂_0's ε."""
    from diffusers import DDIMScheduler

    scheduler.set_timesteps(steps)
    ddim = {"eta": 0.0, "use_clipped_model_output": True}
    options = ddim if isinstance(scheduler, DDIMScheduler) else {}
    x = x_T
    for t in scheduler.timesteps:
        eps = unet(x, t).sample
        x = scheduler.step(eps, t, x, generator=generator, **options).prev_sample
    return x


class DiffusersEps(nn.Module):
    """A diffusers U-Net as the ε network of dgm's DDPM, (x, t, label, extra) -> ε, so that
    dgm's bound code can evaluate it (unconditional: label and extra unused)."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(
        self, x: Tensor, t: Tensor, label: Tensor | None = None, extra: Tensor | None = None
    ) -> Tensor:
        return self.unet(x, t).sample
