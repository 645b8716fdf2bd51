"""Evaluation: likelihoods and their bounds (nats, bits/dim, ELBO, IWAE) and sample quality
(FD, KID, precision/recall in dgm's own features; mode coverage on 2-D toys; the caption
accuracy of a captioner in ``caption_accuracy``)."""

from dgm.evaluate.likelihood import bits_per_dim, evaluate, evaluate_losses
from dgm.evaluate.sample_quality import mode_coverage, precision_recall, sample_quality

__all__ = [
    "bits_per_dim",
    "evaluate",
    "evaluate_losses",
    "mode_coverage",
    "precision_recall",
    "sample_quality",
]
