"""Classical models: naive Bayes, discrete Bayesian networks, Gaussian mixtures, KDE."""

from dgm.models.classical import (  # noqa: F401  (registers the models)
    bayes_net,
    gmm,
    kde,
    naive_bayes,
)
