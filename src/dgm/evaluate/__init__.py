"""Evaluation: likelihoods and their bounds (nats, bits/dim, ELBO, IWAE)."""

from dgm.evaluate.likelihood import bits_per_dim, evaluate, evaluate_losses

__all__ = ["bits_per_dim", "evaluate", "evaluate_losses"]
