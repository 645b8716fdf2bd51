"""Uses of a trained model beyond sampling and likelihood, built on the capabilities in
``dgm.model``: inpainting (``inpaint``), outlier detection (``anomaly``), imputation
(``impute``), generative classification (``classify``), interpolation and latent
arithmetic (``interpolate``), representation probes (``represent``), Bayesian optimisation
in latent space (``design``), lossless compression (the ``compression`` package: range
coding, bits-back coding for VAEs, their file format)."""
