"""Every ``dgm`` command the README shows parses: the model and dataset exist and every
flag is one the command takes (a renamed flag or a typo in the README fails here). Sample
and eval lines are parsed with the sampling options of the model their run directory was
trained with (the README's ``dgm train ... --out DIR`` line for that DIR)."""

import re
import shlex
from pathlib import Path

import pytest

import dgm
from dgm.cli import _check_flags, _parser

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[list[str]]:
    """The argument lists of the inline ``dgm ...`` commands that name a real model or a
    run directory (``runs/...``), joined across line breaks; placeholders such as ``dgm
    train MODEL --help`` are prose, not commands."""
    text = README.read_text()
    models = set(dgm.available_models())
    found = []
    for code in re.findall(r"`(dgm [a-z]+\s[^`]*)`", text):
        args = shlex.split(" ".join(code.split()))[1:]
        if (args[0] == "train" and args[1] in models) or args[1].startswith("runs/"):
            found.append(args)
    return found


COMMANDS = readme_commands()
TRAINED = {  # run directory -> model, from the README's train lines
    args[args.index("--out") + 1]: args[1]
    for args in COMMANDS
    if args[0] == "train" and "--out" in args
}


def test_the_readme_shows_commands_of_every_verb():
    verbs = {args[0] for args in COMMANDS}
    assert {"train", "eval", "sample", "complete", "resume"} <= verbs, verbs


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a)[:60] for a in COMMANDS])
def test_a_readme_command_parses(args):
    model = args[1] if args[0] == "train" else None
    sampled = TRAINED.get(args[1]) if args[0] in ("sample", "eval") else None
    if args[0] == "sample" and args[1] in TRAINED:
        assert sampled is not None
    parser, commands = _parser(model, sampled)
    _check_flags(commands[args[0]], args[1:])  # exits (SystemExit) on an unknown flag
    _, extra = parser.parse_known_args(args)
    assert not extra, f"unparsed: {extra}"
