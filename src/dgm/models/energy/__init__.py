"""Energy-based models trained by contrastive divergence (SGLD) or score matching."""
