"""Energy-based models trained by contrastive divergence (SGLD) or score matching."""

from dgm.models.energy import ebm  # noqa: F401  (registers "ebm")
