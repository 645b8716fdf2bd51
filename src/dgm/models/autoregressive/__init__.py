"""Autoregressive models: p(x) = Π_d p(x_d | x_<d) in a fixed order, exact likelihoods.
Importing this package registers them."""

from dgm.models.autoregressive import fvsbn, gpt, made, nade, pixelcnn, pixelrnn, rnade, rnn  # noqa: F401  (registers them)
