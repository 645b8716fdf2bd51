"""Classical models: naive Bayes, discrete Bayesian networks, Gaussian mixtures, KDE,
hidden Markov models."""

from dgm.models.classical import (  # noqa: F401  (registers the models)
    bayes_net,
    gmm,
    hmm,
    kde,
    naive_bayes,
)
