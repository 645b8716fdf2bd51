"""Two questions tools ask of a model, answered once: does it have capability X (else an
error naming the registered models that do), and what kind of data does it model.

Example:
    >>> modality((1, 28, 28)), modality((2,)), modality((64,), integer=True), modality((8,))
    ('image', 'points', 'tokens', 'vectors')
"""

from __future__ import annotations

from collections.abc import Sequence

from dgm.model import Completable, DiscreteAutoregressive, Encodable, GenerativeModel

MODALITIES = ("image", "points", "tokens", "vectors")

# What a model of each capability has, in words, for the refusal of one that lacks it.
_HAS = {
    Completable: "complete(x, observed_mask)",
    Encodable: "encode/decode/prior: a latent space",
    DiscreteAutoregressive: "per-dimension conditionals to entropy-code with",
}


def modality(event_shape: Sequence[int], integer: bool = False) -> str:
    """What one x of this shape is: ``"image"`` (C, H, W) with C 1 or 3 (drawn as a grid),
    ``"points"`` (2,) (drawn as a scatter over the data), ``"tokens"`` a 1-D sequence of
    integers (text), else ``"vectors"`` (tabular values, or any other shape)."""
    shape = tuple(int(d) for d in event_shape)
    if len(shape) == 3 and shape[0] in (1, 3):
        return "image"
    if shape == (2,):
        return "points"
    if integer and len(shape) == 1:
        return "tokens"
    return "vectors"


def model_modality(model: GenerativeModel) -> str:
    """``modality`` of the data ``model`` was built for."""
    return modality(model.event_shape, model.integer_data)


def models_with(capability: type) -> list[str]:
    """The registered model names whose class has ``capability`` (a protocol of dgm.model)."""
    from dgm.registry import available_models, spec

    return [m for m in available_models() if issubclass(spec(m).cls, capability)]


def class_conditional_models() -> list[str]:
    """The registered model names that can condition on class labels (their config has a
    ``num_classes`` field)."""
    import dataclasses

    from dgm.registry import available_models, spec

    return [
        m
        for m in available_models()
        if "num_classes" in {f.name for f in dataclasses.fields(spec(m).config_cls)}
    ]


def require(model: GenerativeModel, capability: type, task: str, name: str = "") -> None:
    """Refuse ``model`` for ``task`` unless it has ``capability``: a ValueError that says
    what the capability is and names the registered models that have it. ``name`` names
    the model in the message (default: its class)."""
    if isinstance(model, capability):
        return
    who = name or type(model).__name__
    what = capability.__name__
    has = _HAS.get(capability, f"the methods of {what}")
    raise ValueError(
        f"{who} is not {what} (it has no {has}); {task} needs one of: "
        f"{', '.join(models_with(capability))}"
    )


__all__ = [
    "MODALITIES",
    "class_conditional_models",
    "modality",
    "model_modality",
    "models_with",
    "require",
]
