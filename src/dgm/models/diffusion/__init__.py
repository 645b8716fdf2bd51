"""Diffusion models (DDPM) with samplers kept apart as scheduler objects."""
