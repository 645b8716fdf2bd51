"""dgm's own feature network for sample quality: a small convolutional classifier per
image dataset, trained once, seeded, and cached.

There is no network access, so no Inception weights: FD and KID are computed in the
penultimate layer (``FEATURES`` = 128 units) of a classifier that dgm trains on the
dataset's train split (default loader options: pixels in [0, 1]), scaled to mean square 1
on the train images. Name these metrics after the features ("FD (dgm Fashion-MNIST
features)"), never "FID": the numbers are not comparable to Inception-based ones.

Cache: ``features-<dataset>-<digest>.safetensors`` (weights, loaded with safetensors,
never unpickled; the metadata hold the test accuracy) plus a ``.json`` beside it with the
same facts, where ``<digest>`` hashes the training images, labels, architecture and
training settings, so other data or settings never reuse a stale network. The folder is
the data directory (``root`` when given, else ``$DGM_DATA``) when it exists and is
writable, otherwise the user cache ``$XDG_CACHE_HOME/dgm`` (default ``~/.cache/dgm``):
the Debian Fashion-MNIST folder /usr/share/datasets is read-only, so its network lands
there. Training takes about a minute on one CPU core for Fashion-MNIST.

Example:
    >>> import torch
    >>> net = FeatureNet((1, 8, 8), num_classes=10)
    >>> net(torch.rand(2, 1, 8, 8)).shape, net.features(torch.rand(2, 1, 8, 8)).shape
    (torch.Size([2, 10]), torch.Size([2, 128]))
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from dgm.io import atomic_write

FEATURES = 128  # width of the feature layer
ARCHITECTURE = "conv16-conv32-fc128-scaled-v2"  # part of the cache digest: change it with the net
PRETTY = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "mnist_subset": "MNIST-subset"}


def feature_space_name(dataset: str) -> str:
    """``"dgm Fashion-MNIST features"``: how reports name the feature space."""
    return f"dgm {PRETTY.get(dataset, dataset)} features"


class FeatureNet(nn.Module):
    """Two conv blocks (3x3 conv with 16 then 32 channels, batch norm, ReLU, 2x2 max pool)
    and a 128-unit hidden layer: ``forward`` gives class logits, ``features`` the hidden
    layer (post ReLU), the space FD, KID and precision/recall are measured in. Inputs are
    images (B, C, H, W) with pixels in [0, 1]."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        c, h, w = input_shape
        self.input_shape = tuple(input_shape)
        self.num_features = FEATURES  # read by torchmetrics: no dummy forward pass
        self.body = nn.Sequential(
            nn.Conv2d(c, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),  # (B, 16, ceil(H/2), ceil(W/2))
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),  # (B, 32, ceil(H/4), ceil(W/4))
            nn.Flatten(),  # (B, 32 * ceil(H/4) * ceil(W/4))
            nn.Linear(32 * math.ceil(h / 4) * math.ceil(w / 4), FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, num_classes)
        # set after training so that features have mean square 1 on the train images
        # (KID's cubic kernel then sees inner products of order 1, as with Inception)
        self.register_buffer("feature_scale", torch.ones(()))

    def _hidden(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"images have shape {tuple(x.shape[1:])}, but the feature network was trained "
                f"on {self.input_shape}: compare samples with data of the same shape"
            )
        return self.body(x.to(self.head.weight.dtype))  # (B, 128)

    def features(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> (B, 128) features, scaled by ``feature_scale``."""
        return self._hidden(x) * self.feature_scale

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> (B, num_classes) class logits."""
        return self.head(self._hidden(x))


class FeatureExtractor(nn.Module):
    """The thin wrapper torchmetrics' ``FrechetInceptionDistance(feature=...)`` and
    ``KernelInceptionDistance(feature=...)`` take: float images in [0, 1] (so
    ``normalize=False``; torchmetrics passes a custom module's input unchanged) -> features
    (B, ``num_features``), without gradients, the network in eval mode."""

    def __init__(self, net: FeatureNet) -> None:
        super().__init__()
        self.net = net.eval()
        self.num_features = net.num_features

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        self.net.eval()
        return self.net.features(x)


@dataclass
class ClassifierSettings:
    """How the feature network is trained (all part of the cache digest)."""

    steps: int = 1500  # Adam steps: 3.5 epochs of Fashion-MNIST (91 % test accuracy, ~40 s)
    batch_size: int = 128  # images per step
    lr: float = 2e-3  # Adam learning rate, decayed by cosine to 0
    seed: int = 0  # initialisation and batch order


DEFAULT_SETTINGS = ClassifierSettings()  # what feature_classifier trains with unless told


@dataclass
class FeatureClassifier:
    """A trained feature network and what it scores: ``test_accuracy`` on the dataset's
    test split, ``dataset`` its name, ``path`` its cache file (None if not cached)."""

    net: FeatureNet
    dataset: str
    test_accuracy: float
    path: Path | None = None

    @property
    def extractor(self) -> FeatureExtractor:
        return FeatureExtractor(self.net)

    @property
    def feature_space(self) -> str:
        return feature_space_name(self.dataset)


@torch.enable_grad()  # also when called under no_grad (sample_quality)
def train_classifier(
    x: Tensor,
    y: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    settings: ClassifierSettings | None = None,
    *,
    dataset: str = "",
) -> FeatureClassifier:
    """Train a ``FeatureNet`` on images ``x`` (N, C, H, W) in [0, 1] with labels ``y``,
    seeded by ``settings.seed``, on the CPU; its accuracy on (``x_test``, ``y_test``) is
    ``test_accuracy``."""
    s = settings or ClassifierSettings()
    if x.dim() != 4 or len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"the feature network trains on images (N, C, H, W) with N labels; got x of shape "
            f"{tuple(x.shape)} and {len(y)} labels"
        )
    num_classes = int(max(y.max(), y_test.max())) + 1
    if num_classes < 2:
        raise ValueError("the feature network needs labelled data with at least 2 classes")
    gen = torch.Generator().manual_seed(s.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        net = FeatureNet(tuple(x.shape[1:]), num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=s.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, s.steps)
    x, y = x.float(), y.long()
    net.train()
    order, at = torch.randperm(len(x), generator=gen), 0
    for _ in range(s.steps):
        if at + s.batch_size > len(x):  # a new epoch, a new order
            order, at = torch.randperm(len(x), generator=gen), 0
        index = order[at : at + s.batch_size]
        at += s.batch_size
        loss = nn.functional.cross_entropy(net(x[index]), y[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        f = torch.cat([net.features(xb) for xb in x[:5000].split(1000)])  # (≤5000, 128)
        net.feature_scale.fill_(1 / f.square().mean().sqrt().clamp_min(1e-12))
    return FeatureClassifier(net, dataset, accuracy(net, x_test, y_test))


@torch.no_grad()
def accuracy(net: FeatureNet, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Share of ``x`` whose most likely class under ``net`` is ``y``."""
    net.eval()
    hits = sum(
        int((net(xb.float()).argmax(-1) == yb.to(xb.device)).sum())
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True)
    )
    return hits / max(1, len(x))


def cache_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Where feature networks are cached: ``root`` or ``$DGM_DATA`` if it is a writable
    folder, else ``$XDG_CACHE_HOME/dgm`` (default ``~/.cache/dgm``)."""
    for folder in (root, os.environ.get("DGM_DATA")):
        if folder and Path(folder).is_dir() and os.access(folder, os.W_OK):
            return Path(folder)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "dgm"


def _digest(x: Tensor, y: Tensor, settings: ClassifierSettings) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([ARCHITECTURE, asdict(settings), list(x.shape)]).encode())
    h.update(x.float().contiguous().numpy().tobytes())
    h.update(y.long().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def feature_classifier(
    dataset: str,
    root: str | None = None,
    *,
    settings: ClassifierSettings | None = None,
    folder: str | os.PathLike[str] | None = None,
    log: bool = True,
) -> FeatureClassifier:
    """The feature network of image dataset ``dataset`` (its default loader options, train
    split): loaded from the cache (``folder``, default ``cache_dir(root)``) or trained
    there once. ``log`` says on stderr when it trains and where it saves."""
    import sys

    from dgm.data import get

    s = settings or DEFAULT_SETTINGS
    train, test = get(dataset, "train", root), get(dataset, "test", root)
    if train.x.dim() != 4 or train.num_classes < 2:
        raise ValueError(
            f"dataset {dataset!r} has x of shape {tuple(train.x.shape[1:])} and "
            f"{train.num_classes} classes: the feature network needs labelled images "
            "(C, H, W)"
        )
    x, x_test = to_unit_range(train.x, train.value_range), to_unit_range(test.x, test.value_range)
    where = Path(folder) if folder is not None else cache_dir(root)
    path = where / f"features-{dataset}-{_digest(x, train.y, s)}.safetensors"
    if path.is_file():
        state = load_file(path)
        net = FeatureNet(tuple(x.shape[1:]), len(state["head.weight"]))
        net.load_state_dict(state)
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("dgm", "{}"))
        acc = meta.get("test_accuracy")
        if acc is None:  # written by hand: score it afresh
            acc = accuracy(net, x_test, test.y)
        return FeatureClassifier(net.eval(), dataset, float(acc), path)
    if log:
        print(
            f"training the network of the {feature_space_name(dataset)} once ({s.steps} "
            f"steps); it is cached in {path}",
            file=sys.stderr,
        )
    clf = train_classifier(x, train.y, x_test, test.y, s, dataset=dataset)
    meta = {"dataset": dataset, "test_accuracy": clf.test_accuracy, "architecture": ARCHITECTURE}
    meta |= {"settings": asdict(s), "input_shape": list(x.shape[1:])}
    state = {k: v.contiguous() for k, v in clf.net.state_dict().items()}
    try:
        atomic_write(path, lambda p: save_file(state, str(p), metadata={"dgm": json.dumps(meta)}))
        atomic_write(path.with_suffix(".json"), lambda p: p.write_text(json.dumps(meta, indent=1)))
        clf.path = path
    except OSError as e:  # an unwritable cache costs a retraining next time, nothing more
        print(f"could not cache the feature network in {path}: {e}", file=sys.stderr)
    return clf


def to_unit_range(x: Tensor, value_range: tuple[float, float] | None) -> Tensor:
    """Pixels mapped to [0, 1] from their ``value_range`` (default (0, 1)), as float32.

    Example:
        >>> to_unit_range(torch.tensor([-1.0, 0.0, 1.0]), (-1.0, 1.0)).tolist()
        [0.0, 0.5, 1.0]
        >>> to_unit_range(torch.tensor([0, 51, 255]), (0.0, 255.0)).tolist()
        [0.0, 0.20000000298023224, 1.0]
    """
    lo, hi = value_range if value_range is not None else (0.0, 1.0)
    return (x.float() - lo) / (hi - lo)
