"""Uses of a trained model beyond sampling and likelihood (inpainting, ...), built on the
capabilities in ``dgm.model``."""
