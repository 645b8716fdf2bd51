"""Model registry: name -> (class, config dataclass). A new model is a file plus one
``@register`` line; ``dgm.create`` and the CLI find it here."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from dgm.config import from_dict
from dgm.model import GenerativeModel

M = TypeVar("M", bound=type[GenerativeModel])


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type[GenerativeModel]
    config_cls: type
    summary: str  # first line of the class docstring


_MODELS: dict[str, ModelSpec] = {}


def register(name: str, config_cls: type) -> Callable[[M], M]:
    """Class decorator: make ``cls`` available as ``dgm.create(name, ...)``."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config_cls for {name!r} must be a dataclass")

    def decorate(cls: M) -> M:
        if name in _MODELS and _MODELS[name].cls is not cls:
            raise ValueError(f"model name {name!r} is already registered to {_MODELS[name].cls}")
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        _MODELS[name] = ModelSpec(name, cls, config_cls, summary)
        return cls

    return decorate


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


def name_of(model: GenerativeModel) -> str:
    """The registry name of a model instance."""
    for s in _MODELS.values():
        if type(model) is s.cls:
            return s.name
    raise ValueError(f"{type(model).__name__} is not a registered model")
