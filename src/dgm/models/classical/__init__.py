"""Classical models: naive Bayes, discrete Bayesian networks, Gaussian mixtures, KDE."""
