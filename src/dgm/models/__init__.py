"""Model families; importing this package registers every model with ``dgm.registry``."""

from dgm.models import (  # noqa: F401  (registers the models)
    adversarial,
    autoregressive,
    classical,
    diffusion,
    energy,
    flows,
    latent,
)
