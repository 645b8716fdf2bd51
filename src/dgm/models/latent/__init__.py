"""Latent-variable models: the VAE (with β-VAE, IWAE and conditional variants) and the
GMVAE. Importing this package registers ``vae`` and ``gmvae``."""

from dgm.models.latent.gmvae import GMVAE, GMVAEConfig
from dgm.models.latent.vae import VAE, VAEConfig

__all__ = ["GMVAE", "VAE", "GMVAEConfig", "VAEConfig"]
