"""Model families; importing this package registers every model with ``dgm.registry``."""

from dgm.models import latent  # noqa: F401  (registers vae, gmvae)
