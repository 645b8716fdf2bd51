"""Sample quality for every model that samples: FD, KID, improved precision and recall,
class accuracy of conditional samples and, on 2-D toys, mode coverage.

Images are compared in the feature space of dgm's own classifier
(``dgm.evaluate.features``): "FD (dgm Fashion-MNIST features)", never "FID", since no
Inception network is involved and the numbers are not comparable to published FIDs. 2-D
points are compared as they are ("raw 2-D points").

- FD, the Fréchet distance between Gaussians fitted to the two feature sets,
  ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2(Σ_r Σ_g)^{1/2}) (Heusel et al. 2017, arXiv:1706.08500),
  and KID, the unbiased MMD² under the cubic kernel k(a, b) = (aᵀb / d + 1)³, averaged
  over random subsets (Bińkowski et al. 2018, arXiv:1801.01401), both computed by
  torchmetrics' ``FrechetInceptionDistance`` / ``KernelInceptionDistance`` with our
  feature module.
- Improved precision and recall (Kynkäänniemi et al. 2019, arXiv:1904.06991): each set's
  manifold is the union of balls around its points with radius the distance to the k-th
  nearest neighbour in the same set; precision is the share of generated points inside
  the real manifold, recall the share of real points inside the generated one.
- Mode coverage (2-D mixtures with known means and std, e.g. eight_gaussians, grid25): a
  sample is high quality when within 3 std of a mode centre (the convention of VEEGAN,
  Srivastava et al. 2017, arXiv:1705.07761); a mode is captured when it holds at least
  ``min_share`` of the n/K samples a perfect model would put there.

Example:
    >>> import torch
    >>> from dgm.data.toy import EightGaussians
    >>> toy = EightGaussians()
    >>> m = mode_coverage(toy.sample(800, torch.Generator().manual_seed(0)), toy)
    >>> m["modes_captured"], m["modes"], m["high_quality"] > 0.97
    (8, 8, True)
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from dgm.config import option
from dgm.data.dataset import TensorData, data_info, take
from dgm.evaluate.features import FeatureClassifier, feature_classifier, to_unit_range
from dgm.model import GenerativeModel, sample_batches

NUM_SAMPLES = 5000  # samples (and as many data examples) compared by dgm eval --sample-quality


@dataclasses.dataclass
class EvalOptions:
    """What ``dgm eval`` measures besides the likelihood (field comments are the help)."""

    iw_samples: int | None = None  # importance samples K (latent models)
    # also measure samples against the split: FD, KID, precision, recall (image runs: in
    # dgm's own classifier features; 2-D toys: raw points, mode coverage); the only
    # evaluation of models without a likelihood (GANs)
    sample_quality: bool = option(False, action="store_true")
    # samples drawn for --sample-quality, compared with as many data examples (FD and KID
    # are biased by the sample size: compare equal N)
    num_samples: int = option(NUM_SAMPLES, metavar="N")
    # --sample-quality of a class-conditional run: draw for class C (repeat the flag for
    # several; default: every class)
    classes: list[int] | None = option(None, flag="--class", action="append", type=int, metavar="C")


class Identity(nn.Module):
    """Features that are the points themselves, (B, d) -> (B, d) (2-D toys, tests)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features  # torchmetrics reads it instead of a dummy pass

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


def feature_distances(
    real: Tensor,
    fake: Tensor,
    feature: nn.Module,
    *,
    batch_size: int = 500,
    kid_subsets: int = 50,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """FD and KID (mean and std over ``kid_subsets`` random subsets of
    ``min(kid_subset_size, len(real) // 2, len(fake) // 2)`` points, drawn with ``seed``: at
    most half of each set, so that the subsets differ and their spread means something) between
    ``real`` and ``fake`` in the space of ``feature``, a module with an int
    ``num_features`` mapping a batch of inputs to (B, num_features)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    if len(real) < 2 or len(fake) < 2:
        raise ValueError(
            f"FD and KID need at least 2 real and 2 generated examples; got {len(real)} and "
            f"{len(fake)}: raise --num-samples"
        )
    size = max(2, min(kid_subset_size, len(real) // 2, len(fake) // 2))
    fd = FrechetInceptionDistance(feature=feature, normalize=False)
    with warnings.catch_warnings():  # "KID will save all extracted features": we know
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=feature, subsets=kid_subsets, subset_size=size)
    for metric in (fd, kid):
        for xb in real.split(batch_size):
            metric.update(xb, real=True)
        for xb in fake.split(batch_size):
            metric.update(xb, real=False)
    with torch.random.fork_rng(devices=[]):  # KID draws its subsets from the global RNG
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {"fd": float(fd.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


def _knn_radii(points: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """Distance of each point to its k-th nearest neighbour in ``points``, itself excluded."""
    if not 1 <= k < len(points):
        raise ValueError(f"k must be in [1, {len(points) - 1}] for {len(points)} points, got {k}")
    radii = []
    for block in points.split(chunk):
        d = torch.cdist(block, points)  # (chunk, n), the point itself at distance 0
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def _inside(query: Tensor, centres: Tensor, radii: Tensor, chunk: int = 1024) -> Tensor:
    """For each query point, whether it lies in some ball (centres[i], radii[i])."""
    return torch.cat(
        [(torch.cdist(q, centres) <= radii).any(1) for q in query.split(chunk)]
    )  # (n_query,) bool


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> dict[str, float]:
    """Improved precision and recall of ``fake`` against ``real`` (both (n, d) features),
    with k-th nearest neighbour radii (Kynkäänniemi et al. 2019; k = 3 as in the paper)."""
    real, fake = real.flatten(1).double(), fake.flatten(1).double()
    precision = _inside(fake, real, _knn_radii(real, k)).double().mean()
    recall = _inside(real, fake, _knn_radii(fake, k)).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def mode_coverage(
    samples: Tensor, toy: Any, *, sigmas: float = 3.0, min_share: float = 0.25
) -> dict[str, Any]:
    """Mode coverage of 2-D ``samples`` (n, 2) on a Gaussian mixture ``toy`` that has
    ``means`` (K, 2) and an isotropic ``std`` (``EightGaussians``, ``Grid25``).

    Returns ``modes`` K, ``modes_captured`` (modes with at least ``min_share`` · n/K
    samples within ``sigmas`` std of their centre), ``high_quality`` (share of samples
    within ``sigmas`` std of some centre) and ``counts`` (those samples per mode)."""
    means, std = getattr(toy, "means", None), getattr(toy, "std", None)
    if not isinstance(means, Tensor) or not isinstance(std, float):
        raise ValueError(
            f"mode coverage needs a Gaussian mixture with known means and std "
            f"(eight_gaussians, grid25); {type(toy).__name__} has none"
        )
    if samples.dim() != 2 or samples.shape[1] != means.shape[1] or len(samples) == 0:
        raise ValueError(f"samples have shape {tuple(samples.shape)}, expected (n, 2), n >= 1")
    d = torch.cdist(samples.double().cpu(), means.double())  # (n, K)
    nearest, mode = d.min(1)
    good = nearest <= sigmas * std
    counts = torch.bincount(mode[good], minlength=len(means))
    need = min_share * len(samples) / len(means)
    return {
        "modes": len(means),
        "modes_captured": int((counts >= max(need, 1)).sum()),
        "high_quality": float(good.double().mean()),
        "counts": counts.tolist(),
    }


def data_kind(event_shape: tuple[int, ...], integer: bool = False) -> str:
    """``"image"`` for (C, H, W), ``"points"`` for (2,); else a ValueError that says why."""
    shape = tuple(event_shape)
    if len(shape) == 3:
        return "image"
    if shape == (2,):
        return "points"
    what = "text or token sequences" if integer and len(shape) == 1 else f"shape {shape}"
    raise ValueError(
        f"sample quality needs image data (C, H, W) or 2-D points; this model's data are "
        f"{what}: train it on an image dataset (fashion_mnist, digits, ...) or a 2-D toy "
        "(eight_gaussians, grid25, ...) to measure its samples"
    )


@torch.no_grad()
def draw(
    model: GenerativeModel,
    n: int,
    c: Tensor | None,
    *,
    batch_size: int,
    generator: torch.Generator,
    options: dict[str, Any] | None = None,
) -> Tensor:
    """``n`` samples of ``model`` (for conditions ``c``, (n, ...) or None; with sampling
    ``options``) in batches, on the CPU: ``sample_batches`` joined."""
    return torch.cat(list(sample_batches(model, n, c, batch_size, generator, **(options or {}))))


@torch.no_grad()
def sample_quality(
    model: GenerativeModel,
    data: Dataset,
    *,
    num_samples: int = NUM_SAMPLES,
    batch_size: int = 500,
    seed: int = 0,
    generator: torch.Generator | None = None,
    classes: list[int] | None = None,
    classifier: FeatureClassifier | None = None,
    root: str | None = None,
    k: int = 3,
    options: dict[str, Any] | None = None,
    kid_subsets: int = 50,
) -> dict[str, Any]:
    """Sample quality of ``model`` against ``data`` (a ``TensorData``, e.g. the test split).

    Draws ``num_samples`` samples (``generator``, else one seeded by ``seed`` on the
    model's device) and compares them with as many data examples (all of them if fewer),
    both mapped to [0, 1] from the data's ``value_range``. Images are compared in the
    features of ``classifier`` (default: ``feature_classifier(data.name, root)``, trained
    and cached on first use), 2-D points as they are. A class-conditional model draws
    equally many samples for each of ``classes`` (default: all) and the real examples are
    those of the same classes; a context-conditional one draws for the contexts of the
    real examples it is compared with.
    ``options`` are the model's sampling options (temperature, sampler, steps, ...).
    KID is averaged over ``kid_subsets`` random subsets of up to 1000 examples each.

    Returns ``feature_space`` (what FD/KID/precision/recall were measured in), ``fd``,
    ``kid``, ``kid_std``, ``precision``, ``recall``, ``k``, ``num_samples``, ``num_real``;
    for images ``classifier_test_accuracy``; for a class-conditional model of images
    ``class_accuracy`` (the classifier's accuracy on the samples of each class, keyed by
    class) and ``accuracy`` (their mean); for 2-D mixtures with known modes the
    ``mode_coverage`` entries.
    """
    if not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(f"num_samples (--num-samples) must be at least 2, got {num_samples!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    kind = data_kind(tuple(model.event_shape), model.integer_data)
    cond = model.conditioning
    gen = generator or torch.Generator(model.device).manual_seed(seed)
    info = data_info(data)
    labels = data.y if isinstance(data, TensorData) else None
    real_index = torch.arange(len(data))  # type: ignore[arg-type]
    c: Tensor | None = None
    if classes is not None and cond.kind != "classes":
        raise ValueError(
            "classes (--class) need a class-conditional model; this one is not: drop them"
        )
    if cond.kind == "classes":
        wanted = list(range(cond.num_classes)) if classes is None else list(classes)
        if not wanted or not all(0 <= int(y) < cond.num_classes for y in wanted):
            raise ValueError(f"classes must lie in 0..{cond.num_classes - 1}, got {wanted}")
        c = torch.tensor(wanted, device=model.device)[torch.arange(num_samples) % len(wanted)]
        if labels is not None:
            real_index = real_index[torch.isin(labels, torch.tensor(wanted))]
    if len(real_index) < 2:
        raise ValueError("the data hold fewer than 2 examples of the requested classes")
    pick = torch.Generator().manual_seed(seed)
    real_index = real_index[torch.randperm(len(real_index), generator=pick)[:num_samples]]
    real_index = real_index.sort().values
    value_range = info.value_range
    real_batch = take(data, real_index, "cpu", pick)
    real = to_unit_range(real_batch.x, value_range).double()
    if cond.kind == "context":  # the contexts of the real examples compared with
        if real_batch.context is None:
            raise ValueError("the data carry no context to condition the samples on")
        c = real_batch.context[torch.arange(num_samples) % len(real)].to(model.device)
    model.eval()
    drawn = draw(model, num_samples, c, batch_size=batch_size, generator=gen, options=options)
    fake = to_unit_range(drawn, value_range)
    fake = fake.double()
    if not torch.isfinite(fake).all():
        raise ValueError("the model drew non-finite samples: its sample quality is undefined")
    result: dict[str, Any] = {}
    if kind == "image":
        if classifier is None:
            classifier = feature_classifier(info.name, root)
        extractor = classifier.extractor
        result["feature_space"] = classifier.feature_space
        result["classifier_test_accuracy"] = classifier.test_accuracy
        real_f = torch.cat([extractor(xb) for xb in real.split(batch_size)]).double()
        fake_f = torch.cat([extractor(xb) for xb in fake.split(batch_size)]).double()
        if cond.kind == "classes":
            assert c is not None
            logits = torch.cat([classifier.net(xb) for xb in fake.split(batch_size)])
            hit = logits.argmax(-1).cpu() == c.cpu()
            per_class = {int(y): float(hit[c.cpu() == y].double().mean()) for y in wanted}
            result["class_accuracy"] = per_class
            result["accuracy"] = sum(per_class.values()) / len(per_class)
    else:
        result["feature_space"] = "raw 2-D points"
        real_f, fake_f = real, fake
    space = Identity(real_f.shape[1])
    result |= feature_distances(
        real_f, fake_f, space, batch_size=batch_size, kid_subsets=kid_subsets, seed=seed
    )
    result |= precision_recall(real_f, fake_f, k)
    result |= {"k": k, "num_samples": num_samples, "num_real": len(real)}
    density = data.density if isinstance(data, TensorData) else None
    if kind == "points" and isinstance(getattr(density, "means", None), Tensor):
        coverage = mode_coverage(fake, density)
        result |= {key: v for key, v in coverage.items() if key != "counts"}
    for key in ("fd", "kid", "precision", "recall"):
        if not math.isfinite(result[key]):
            raise ValueError(f"{key} is not finite: the samples are degenerate")
    return result


def sample_quality_lines(result: dict[str, Any]) -> list[str]:
    """``sample_quality``'s result as the lines ``dgm eval`` prints, each metric named with
    its feature space ("FD (dgm Fashion-MNIST features)"); no lines for an empty result."""
    if not result:
        return []
    space = result["feature_space"]
    lines = [
        f"sample quality: {result['num_samples']} samples against {result['num_real']} "
        f"data examples, in {space}",
        f"  FD ({space}): {result['fd']:.4f}",
        f"  KID ({space}): {result['kid']:.5f} ± {result['kid_std']:.5f}",
        f"  precision (k={result['k']}): {result['precision']:.4f}",
        f"  recall (k={result['k']}): {result['recall']:.4f}",
    ]
    if "classifier_test_accuracy" in result:
        lines.append(
            f"  feature classifier test accuracy: {result['classifier_test_accuracy']:.4f}"
        )
    if "class_accuracy" in result:
        each = ", ".join(f"{y}: {a:.3f}" for y, a in result["class_accuracy"].items())
        lines.append(
            f"  classifier accuracy on class-conditional samples: {result['accuracy']:.4f}"
        )
        lines.append(f"    per class: {each}")
    if "modes" in result:
        lines.append(f"  modes captured: {result['modes_captured']} of {result['modes']}")
        lines.append(
            f"  high-quality samples (within 3 std of a mode): {result['high_quality']:.4f}"
        )
    return lines
