"""Adversarial family: one ``gan`` model with pluggable objectives."""
