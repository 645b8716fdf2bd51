"""Model registry: name -> (class, config dataclass). A new model is a file plus one
``@register`` line; ``dgm.create`` and the CLI find it here."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch

from dgm.config import from_dict
from dgm.model import GenerativeModel

M = TypeVar("M", bound=type[GenerativeModel])


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type[GenerativeModel]
    config_cls: type
    summary: str  # first line of the class docstring
    # field -> the behaviour a run saved before that field existed had (see saved_model_config)
    saved_defaults: dict[str, Any] = dataclasses.field(default_factory=dict)


_MODELS: dict[str, ModelSpec] = {}


def register(
    name: str, config_cls: type, *, saved_defaults: dict[str, Any] | None = None
) -> Callable[[M], M]:
    """Class decorator: make ``cls`` available as ``dgm.create(name, ...)``.

    ``config_cls`` is a flat dataclass; the command line makes its fields ``dgm train``
    flags (and the class's ``sample_options`` fields ``dgm sample`` flags), refusing a field
    that collides with one of its own flags when it builds the parsers (``dgm.cli.common``).
    ``saved_defaults`` maps a field added with a new default to the value that keeps the
    old behaviour: a saved config without the field gets it (``saved_model_config``).
    """
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config_cls for {name!r} must be a dataclass")
    saved_defaults = dict(saved_defaults or {})
    fields = {f.name for f in dataclasses.fields(config_cls)}
    if set(saved_defaults) - fields:
        raise ValueError(f"saved_defaults of {name!r} name no config field: {saved_defaults}")

    def decorate(cls: M) -> M:
        if name in _MODELS and _MODELS[name].cls is not cls:
            if same_definition(_MODELS[name].cls, cls):
                return cls  # its module imported a second time (e.g. one file's doctests)
            raise ValueError(f"model name {name!r} is already registered to {_MODELS[name].cls}")
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        _MODELS[name] = ModelSpec(name, cls, config_cls, summary, saved_defaults)
        return cls

    return decorate


def same_definition(a: type, b: type) -> bool:
    """Whether two class objects come from the same ``class`` statement: the same
    qualified name in the same source file. A module imported twice under two names (pytest
    collecting one model file's doctests with ``--import-mode=importlib``) defines its
    classes again; registering such a copy keeps the first registration, while a different
    class under a taken name is still refused."""
    if a.__qualname__ != b.__qualname__:
        return False
    try:
        return os.path.samefile(inspect.getfile(a), inspect.getfile(b))
    except (TypeError, OSError):  # a class defined outside a file (an interpreter, exec)
        return False


def unregister(name: str) -> None:
    """Remove a registration (tests register throwaway models)."""
    _MODELS.pop(name, None)


def available_models() -> list[str]:
    return sorted(_MODELS)


def spec(name: str) -> ModelSpec:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; available: {', '.join(available_models())}"
        ) from None


def create(name: str, event_shape: Iterable[int], **config: Any) -> GenerativeModel:
    """Build a registered model from its name, the shape of one x and config overrides.

    Example:
        >>> import dgm
        >>> model = dgm.create("vae", (1, 8, 8), latent_dim=2)
        >>> model.sample(3).shape
        torch.Size([3, 1, 8, 8])
    """
    s = spec(name)
    return s.cls(tuple(event_shape), from_dict(s.config_cls, config))


def saved_model_config(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """The config values a saved run (its config.json) of model ``name`` means today: a
    field added since, with a new default, takes the value the run was trained with
    (``register(..., saved_defaults=...)``), so old runs keep their behaviour: a NADE
    config.json without ``activation`` (saved before it existed) stays sigmoid.
    """
    return {**spec(name).saved_defaults, **values}


def config_for_data(name: str, data: Any, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with what the data decide filled in: a model with a ``context_shape``
    field trained on data that carry a context gets that context's shape (and, for a text
    context, its vocabulary size ``context_vocab``), and one with a ``vocab_size`` field
    trained on text gets the size of its vocabulary (unless given), and one with an
    ``end_token`` field trained on padded text (``words``, captions) its end token; a model whose
    ``num_levels`` defaults to 0 (real x, e.g. ``ddpm``) trained on discrete data gets their
    number of levels (256 for ``--scale byte``, 2 for binarized images) unless given; a
    model that needs classes (``num_classes`` defaults above 0: naive Bayes) trained on
    labelled data gets the data's number of classes unless given."""
    from dgm.data.dataset import data_info

    info = data_info(data)
    fields = {f.name for f in dataclasses.fields(spec(name).config_cls)}
    shape = info.context_shape
    if shape and "context_shape" in fields and not config.get("context_shape"):
        config = {**config, "context_shape": shape}
    tokens = info.context_vocab  # a text context: its vocabulary
    if tokens and "context_vocab" in fields and not config.get("context_vocab"):
        config = {**config, "context_vocab": tokens}
    vocab = info.vocab  # text: a model with a vocab_size gets the data's
    if vocab and "vocab_size" in fields and not config.get("vocab_size"):
        config = {**config, "vocab_size": len(vocab)}
    end = info.end_token  # padded text: where each sequence's tokens end
    if end is not None and "end_token" in fields and "end_token" not in config:
        config = {**config, "end_token": end}
    levels = _discrete_levels(data)  # 8-bit or binary data: a num_levels that defaults to 0
    default = {f.name: f.default for f in dataclasses.fields(spec(name).config_cls)}
    if levels and default.get("num_levels") == 0 and "num_levels" not in config:
        config = {**config, "num_levels": levels}
    _check_continuous_on_levels(name, data, {**default, **config})
    classes = info.num_classes
    if classes and (default.get("num_classes") or 0) > 0 and "num_classes" not in config:
        config = {**config, "num_classes": classes}
    return config


def _check_continuous_on_levels(name: str, data: Any, config: dict[str, Any]) -> None:
    """Refuse a continuous density that can dequantize (a ``dequantize`` field) but does
    not, on image data whose float values take a few discrete levels (e.g. digits' 17
    grey levels scaled to [0, 1]): its density on them is not a likelihood of the data
    (bits/dim can go negative while eval says ``bound: exact``)."""
    from dgm.data.dataset import TensorData

    if config.get("dequantize", None) != "none" or not isinstance(data, TensorData):
        return
    x, info = data.x, data.info
    if not x.is_floating_point() or info.value_range is None:
        return  # integer x are refused by the model; real data carry no value range
    levels = int(torch.unique(x.flatten()[:100_000]).numel())
    if info.dynamic_binarize:
        levels = 2
    if levels > 256:
        return
    dataset = info.name or "the data"
    if levels <= 2:
        fix = "model binary data with nade, made, fvsbn or vae, or drop --binarize"
    else:
        fix = "pass --scale byte --dequantize uniform (or variational) to model the levels"
    raise ValueError(
        f"dataset {dataset!r} holds {levels} discrete levels per value, and a {name} density "
        f"on them is no likelihood of the data (bits/dim can go below 0): {fix}"
    )


def _discrete_levels(data: Any) -> int:
    """How many values the data's x take when they are discrete: hi + 1 for integer x in
    0..hi, 2 for binary floats (static or dynamic binarization); 0 for real x."""
    from dgm.data.dataset import TensorData

    if not isinstance(data, TensorData) or data.x.numel() == 0:
        return 0
    x, info = data.x, data.info
    if not x.is_floating_point():
        hi = info.value_range
        return int(hi[1]) + 1 if hi else int(x.max()) + 1
    if info.dynamic_binarize or bool(((x == 0) | (x == 1)).all()):
        return 2
    return 0


def name_of(model: GenerativeModel) -> str:
    """The registry name of a model instance."""
    for s in _MODELS.values():
        if type(model) is s.cls:
            return s.name
    raise ValueError(f"{type(model).__name__} is not a registered model")
