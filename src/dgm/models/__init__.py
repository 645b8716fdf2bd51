"""Model families; importing this package registers every model with ``dgm.registry``."""

from dgm.models import autoregressive, flows, latent  # noqa: F401  (registers the models)
