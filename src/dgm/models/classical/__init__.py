"""Classical models: naive Bayes, discrete Bayesian networks, Gaussian mixtures, KDE,
hidden Markov models, a Gaussian MLP p(x | c)."""

from dgm.models.classical import (  # noqa: F401  (registers the models)
    bayes_net,
    gaussian_mlp,
    gmm,
    hmm,
    kde,
    naive_bayes,
)
