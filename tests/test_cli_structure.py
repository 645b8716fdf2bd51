"""The dgm/cli/ package: the run flags mean one thing on every verb, one count check
names the flag, --caption and --prompt are two flags, and the capability refusal names
the registered models that have the capability."""

import argparse

import pytest

import dgm
from dgm.capabilities import modality, models_with, require
from dgm.cli.common import POSITIVE, check_counts
from dgm.cli.parser import build_parser, check_flags, main
from dgm.model import Completable, Encodable
from helpers import one_line_error

RUN_VERBS = ("eval", "sample", "complete", "anomaly", "impute", "classify", "interpolate")
RUN_VERBS += ("represent", "design", "compress", "decompress", "report", "compare")


def test_every_verb_that_reads_a_run_takes_the_run_flags_with_one_help():
    _, parsers = build_parser()
    helps: dict[str, set[str]] = {}
    for verb in RUN_VERBS:
        actions = {o: a for a in parsers[verb]._actions for o in a.option_strings}
        for flag in ("--best", "--no-ema", "--threads"):
            assert flag in actions, f"dgm {verb} lacks {flag}"
            helps.setdefault(flag, set()).add(actions[flag].help)
    assert all(len(h) == 1 for h in helps.values()), helps


def _count_actions(parser):
    """(flag, dest, minimum) of every count flag of ``parser``: generated ones carry their
    minimum, the hand-written POSITIVE ones take at least 1."""
    for action in parser._actions:
        low = getattr(action, "minimum", 1 if action.dest in POSITIVE else None)
        if low is not None and action.option_strings:
            yield action.option_strings[0], action.dest, low


@pytest.mark.parametrize("model", [None, *dgm.available_models()])
def test_every_count_flag_refuses_a_value_below_its_minimum_naming_the_flag(model):
    _, parsers = build_parser(model, model)
    checked = 0
    for verb, parser in parsers.items():
        for flag, dest, low in _count_actions(parser):
            ns = argparse.Namespace(command=verb, **{dest: low - 1})
            with pytest.raises(ValueError, match=f"^{flag} must be at least {low}, got {low - 1}$"):
                check_counts(ns, parser)
            check_counts(argparse.Namespace(command=verb, **{dest: low}), parser)  # allowed
            checked += 1
    assert checked >= (30 if model is None else 10)


def test_a_negative_sample_count_is_refused_naming_the_flag_not_the_field(tmp_path, capsys):
    argv = ["train", "vae", "--data", "digits", "--steps", "1", "--sample-count", "-1"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    line = one_line_error(capsys.readouterr().err, "train")
    assert "--sample-count must be at least 0, got -1" in line and "sample_count" not in line
    assert not (tmp_path / "run").exists()  # refused before any work
    assert main(["impute", str(tmp_path), "--mask", "random", "-m", "0"]) == 2
    assert "-m must be at least 1, got 0" in capsys.readouterr().err
    assert main(["interpolate", str(tmp_path), "--steps", "1"]) == 2
    assert "--steps must be at least 2, got 1" in capsys.readouterr().err


def test_prompt_is_a_sequence_models_own_flag_and_caption_the_text_that_becomes_c(capsys):
    _, parsers = build_parser(None, "gpt")
    flags = {o for a in parsers["sample"]._actions for o in a.option_strings}
    assert {"--prompt", "--caption"} <= flags
    _, parsers = build_parser(None, "vae")
    with pytest.raises(SystemExit):
        check_flags(parsers["sample"], ["run", "--prompt", "a bag"])
    assert "did you mean --caption?" in capsys.readouterr().err


def test_require_names_the_registered_models_with_the_capability():
    model = dgm.create("fvsbn", (4,))
    with pytest.raises(ValueError, match=r"FVSBN is not Encodable .*; interpolation needs one of"):
        require(model, Encodable, "interpolation")
    assert "vae" in models_with(Encodable) and "fvsbn" not in models_with(Encodable)
    assert set(models_with(Completable)) <= set(dgm.available_models())
    require(dgm.create("vae", (4,)), Encodable, "interpolation")  # has it: no error


def test_modality_names_the_four_kinds_of_data():
    assert modality((3, 8, 8)) == "image" and modality((1, 28, 28)) == "image"
    assert modality((1, 4, 8)) == modality((3, 32, 16)) == "image"  # square or not
    assert modality((5, 8, 8)) == "vectors"  # not 1 or 3 channels: no picture
    assert modality((2,)) == "points"
    assert modality((64,), integer=True) == "tokens" and modality((64,)) == "vectors"


# Each verb's own options dataclass, in the library module that does the work.
TASK_OPTIONS = {
    "anomaly": "dgm.tasks.anomaly.AnomalyOptions",
    "impute": "dgm.tasks.impute.ImputeOptions",
    "classify": "dgm.tasks.classify.ClassifyOptions",
    "interpolate": "dgm.tasks.interpolate.InterpolateOptions",
    "represent": "dgm.tasks.represent.RepresentOptions",
    "design": "dgm.tasks.design.DesignOptions",
    "complete": "dgm.tasks.inpaint.CompleteOptions",
    "eval": "dgm.evaluate.sample_quality.EvalOptions",
    "sample": "dgm.sampling.SampleOptions",
    "report": "dgm.report.options.ReportOptions",
    "compare": "dgm.report.options.CompareOptions",
}


def _options_class(path):
    import importlib

    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _reaches(parser, cls, prefix="", flags=None):
    """Every field of ``cls`` is one action of ``parser`` whose help holds the field's
    comment."""
    import dataclasses

    from dgm.config import field_comments

    comments = field_comments(cls)
    by_dest = {a.dest: a for a in parser._actions}
    for f in dataclasses.fields(cls):
        action = by_dest.get(prefix + f.name)
        assert action is not None, f"{cls.__name__}.{f.name} has no flag on {parser.prog}"
        assert comments.get(f.name), f"{cls.__name__}.{f.name} has no comment (the help)"
        assert action.help and comments[f.name] in action.help, (cls, f.name, action.help)


def _no_collisions(parser):
    """No flag and no namespace entry (dest) is claimed by two actions."""
    seen: dict[str, str] = {}
    for action in parser._actions:
        if action.dest in ("help", "version"):
            continue
        assert action.dest not in seen, f"{parser.prog}: dest {action.dest!r} taken twice"
        seen[action.dest] = str(action.option_strings)
        assert action.help, f"{parser.prog}: {action.option_strings} has no help"


@pytest.mark.parametrize("model", [None, *dgm.available_models()])
def test_every_task_and_model_option_reaches_the_cli_with_help_and_no_collision(model):
    from dgm.cli.train import _PICTURE
    from dgm.registry import spec

    _, parsers = build_parser(model, model)
    for verb, path in TASK_OPTIONS.items():
        _reaches(parsers[verb], _options_class(path))
    if model is not None:
        found = spec(model)
        _reaches(parsers["train"], found.config_cls)
        if found.cls.sample_options is not None:
            _reaches(parsers["train"], found.cls.sample_options, prefix=_PICTURE)
            _reaches(parsers["sample"], found.cls.sample_options)
            _reaches(parsers["eval"], found.cls.sample_options)
    for parser in parsers.values():
        _no_collisions(parser)


def _default(function, name):
    import inspect

    return inspect.signature(function).parameters[name].default


def test_task_option_defaults_are_the_library_defaults():
    """The flags' defaults are the options dataclasses' defaults, which the library uses
    (design's box and initial points, sample quality's sample count, interpolation's
    steps and method, the projection)."""
    from dgm.evaluate.sample_quality import EvalOptions, sample_quality
    from dgm.tasks import design, interpolate, represent

    assert design.DesignOptions.width == design.WIDTH == _default(design.latent_box, "width")
    assert design.DesignOptions.initial == _default(design.compare, "initial")
    assert EvalOptions.num_samples == _default(sample_quality, "num_samples")
    options = interpolate.InterpolateOptions
    assert options.steps == _default(interpolate.interpolate, "steps")
    assert options.method == _default(interpolate.interpolate, "method")
    assert options.method == _default(interpolate.path, "method")
    assert represent.RepresentOptions.projection == _default(represent.project, "method")


def test_field_comments_read_each_class_once_and_callers_get_their_own_dict():
    """Building the parser reads each config class's source once per process (re-reading
    it on every ``build_parser`` cost 0.45 CPU-s a call), and a caller changing the dict it
    got changes nothing for the next caller."""
    from unittest import mock

    import dgm.config
    from dgm.models.latent.vae import VAEConfig

    build_parser("vae")
    first = dgm.config.field_comments(VAEConfig)
    assert first["latent_dim"]  # a real comment
    first["latent_dim"] = "changed"
    with mock.patch.object(dgm.config.inspect, "getsource", side_effect=AssertionError):
        again = dgm.config.field_comments(VAEConfig)  # no source read this time
        build_parser("vae")  # the second build reads no source either
    assert again["latent_dim"] != "changed" and again.keys() == first.keys()


@pytest.mark.parametrize("model", dgm.available_models())
def test_every_shown_default_reads_back_through_its_flag_as_the_default(model):
    """ "(default: X)" in a flag's help is text the flag takes: its parser gives the
    field's default back (tuples as "300,300"; an empty tuple is shown "(empty)" and given
    as '')."""
    import dataclasses
    import re

    from dgm.config import _default
    from dgm.registry import spec

    _, parsers = build_parser(model, model)
    by_dest = {a.dest: a for a in parsers["train"]._actions}
    checked = 0
    for f in dataclasses.fields(spec(model).config_cls):
        default, action = _default(f), by_dest[f.name]
        shown = re.search(r"\(default: (.*)\)$", action.help or "")
        if default is None or isinstance(default, bool) or shown is None:
            continue
        text = "" if shown.group(1) == "(empty)" else shown.group(1)
        assert action.type(text) == default, (model, f.name, shown.group(1))
        checked += 1
    assert checked > 0
