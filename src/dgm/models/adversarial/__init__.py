"""Adversarial family: one ``gan`` model with pluggable objectives."""

from dgm.models.adversarial import gan  # noqa: F401  (registers it)
