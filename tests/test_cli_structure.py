"""The dgm/cli/ package: the run flags mean one thing on every verb, one count check
names the flag, --caption and --prompt are two flags, and the capability refusal names
the registered models that have the capability."""

import argparse

import pytest

import dgm
from dgm.capabilities import modality, models_with, require
from dgm.cli.common import check_counts
from dgm.cli.parser import build_parser, check_flags
from dgm.model import Completable, Encodable

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


@pytest.mark.parametrize(
    "command, name, flag", [("impute", "m", "-m"), ("design", "initial", "--initial")]
)
def test_one_count_check_names_the_flag(command, name, flag):
    ns = argparse.Namespace(command=command, **{name: 0})
    with pytest.raises(ValueError, match=f"^{flag} must be at least 1, got 0$"):
        check_counts(ns)
    check_counts(argparse.Namespace(command="interpolate", steps=0))  # checked by the verb


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
    assert modality((5, 8, 8)) == "vectors"  # not 1 or 3 channels: no picture
    assert modality((2,)) == "points"
    assert modality((64,), integer=True) == "tokens" and modality((64,)) == "vectors"
