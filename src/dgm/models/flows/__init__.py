"""Normalizing flows: a standard-normal base and a chain of bijections, exact likelihoods.
Importing this package registers them."""

from dgm.models.flows import glow, maf, nice, realnvp  # noqa: F401  (registers them)
