"""Diffusion models (DDPM) with samplers kept apart as scheduler objects."""

from dgm.models.diffusion import ddpm  # noqa: F401  (registers "ddpm")
