"""The conditioning fields of model configs come from the declared mixins of
``dgm.model``, with the names and defaults config.json has always held."""

from __future__ import annotations

import dataclasses
import json

import pytest

import dgm
from dgm import config as cfg
from dgm.model import (
    ClassConditional,
    ConditionDropout,
    ContextConditional,
    TextContext,
    conditioning_of,
)
from dgm.registry import spec

MIXIN_OF = {
    "num_classes": ClassConditional,
    "context_shape": ContextConditional,
    "context_vocab": TextContext,
    "condition_dropout": ConditionDropout,
}
# every registered model's conditioning fields and defaults, as config.json held them
# before the mixins (JSON values: tuples are lists)
SAVED = {
    "char_rnn": {"context_shape": []},
    "ddpm": {"num_classes": 0, "context_shape": [], "condition_dropout": 0.0},
    "ebm": {"num_classes": 0},
    "fvsbn": {"num_classes": 0},
    "gan": {"num_classes": 0, "context_shape": []},
    "gaussian_mlp": {"context_shape": []},
    "glow": {"num_classes": 0, "context_shape": []},
    "gmvae": {"num_classes": 0, "context_shape": [], "context_vocab": 0, "condition_dropout": 0.0},
    "iaf": {"num_classes": 0, "context_shape": []},
    "made": {"num_classes": 0},
    "maf": {"num_classes": 0, "context_shape": []},
    "nade": {"num_classes": 0},
    "naive_bayes": {"num_classes": 10},
    "nice": {"num_classes": 0, "context_shape": []},
    "pixelcnn": {"num_classes": 0, "context_shape": []},
    "pixelrnn": {"num_classes": 0, "context_shape": []},
    "realnvp": {"num_classes": 0, "context_shape": []},
    "rnade": {"num_classes": 0, "context_shape": []},
    "vae": {"num_classes": 0, "context_shape": [], "context_vocab": 0, "condition_dropout": 0.0},
}


@pytest.mark.parametrize("name", dgm.available_models())
def test_conditioning_fields_come_from_the_mixins_with_the_saved_names_and_defaults(name):
    config_cls = spec(name).config_cls
    saved = cfg.to_dict(config_cls())
    fields = {k: v for k, v in json.loads(json.dumps(saved)).items() if k in MIXIN_OF}
    assert fields == SAVED.get(name, {})
    for field in fields:
        assert issubclass(config_cls, MIXIN_OF[field]), (name, field)
    for mixin in MIXIN_OF.values():  # a mixin included is a field in config.json
        if issubclass(config_cls, mixin):
            assert {f.name for f in dataclasses.fields(mixin)} <= set(saved)


@pytest.mark.parametrize("name", sorted(SAVED))
def test_the_model_reads_what_c_is_from_the_mixins(name):
    config_cls = spec(name).config_cls
    given: dict = {}
    if issubclass(config_cls, ClassConditional):
        given["num_classes"] = 3
    elif issubclass(config_cls, ContextConditional):
        given["context_shape"] = (2,)
    if issubclass(config_cls, ConditionDropout):
        given["condition_dropout"] = 0.1
    cond = conditioning_of(cfg.from_dict(config_cls, given))
    assert cond.num_classes == given.get("num_classes", 0)
    assert cond.context_shape == given.get("context_shape", ())
    assert cond.optional == ("condition_dropout" in given)


def test_a_field_of_that_name_without_the_mixin_conditions_on_nothing():
    @dataclasses.dataclass
    class Plain:
        num_classes: int = 10  # a count of something else, not a conditioning declaration

    @dataclasses.dataclass
    class Text(TextContext):
        pass

    assert conditioning_of(Plain()).kind == "none"
    cond = conditioning_of(Text(context_shape=(4,), context_vocab=5))
    assert cond.kind == "context" and cond.context_vocab == 5 and not cond.optional
