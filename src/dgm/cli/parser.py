"""The ``dgm`` command: the parser of every verb, and the layer that turns errors into one
line. Each verb group lives in its own module and holds no experiment logic:

dgm list | train MODEL ... | resume DIR                  (dgm.cli.train)
dgm eval DIR | sample DIR --out FILE | complete DIR      (dgm.cli.evaluate)
dgm anomaly | impute | classify DIR ...                  (dgm.cli.tasks)
dgm interpolate | represent | design DIR ...             (dgm.cli.latent)
dgm compress | decompress DIR IN OUT                     (dgm.cli.compress)
dgm sweep MODEL --data D --vary FIELD=V1,V2 --out DIR    (dgm.cli.sweep)
dgm report DIR | compare DIR1 DIR2 ...                   (dgm.cli.report)
dgm control DIR --env Pendulum-v1                        (dgm.cli.control)
dgm --version

Flags are never abbreviated (``--step`` is not ``--steps``); a misspelled one is refused
with the subcommand's usage and the closest flag. Errors are one line on stderr: exit 2
for bad input or files, 3 when training diverged, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable, Sequence

import torch

from dgm.cli import common, compress, control, evaluate, latent, report, sweep, tasks, train
from dgm.registry import available_models
from dgm.version import __version__

# The verb groups, in the order of `dgm --help`: each has add_parsers(sub) and COMMANDS.
GROUPS = (train, evaluate, tasks, report, latent, compress, sweep, control)

# Flags renamed so that one flag has one meaning across verbs: verb -> {old: new}.
RENAMED = {
    "sample": {"--steps": "--sampling-steps"},
    "eval": {"--steps": "--sampling-steps"},
    "anomaly": {"--out": "--ood", "--out-root": "--ood-root"},
}
# Flags that a verb takes only for some runs, with the flag meant where they are refused:
# --prompt is a sequence model's own prompt; the text that becomes c is --caption.
MEANT = {"--prompt": "--caption"}


def build_parser(
    model: str | None = None, sampled: str | None = None
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and its subcommands' parsers; ``model`` adds that model's config flags to
    ``train``, ``sampled`` (the model of the run being sampled) its sampling-option flags to
    ``sample`` and ``eval``. No parser takes abbreviations: ``--step`` is refused, not read
    as --steps."""
    p = argparse.ArgumentParser(
        prog="dgm",
        description="Deep generative models: train, evaluate, sample.",
        allow_abbrev=False,
    )
    p.add_argument("--version", action="version", version=f"dgm {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    parsers = train.add_parsers(sub, model) | evaluate.add_parsers(sub, sampled)
    for group in GROUPS[2:]:
        parsers |= group.add_parsers(sub)
    return p, parsers


def _renamed(command: str, args: Sequence[str]) -> str | None:
    """The one-line refusal of a flag renamed for ``command`` (RENAMED), or None."""
    for arg in args:
        if arg == "--":
            return None
        new = RENAMED.get(command, {}).get(arg.split("=", 1)[0])
        if new is not None:
            return f"{arg.split('=', 1)[0]} is now {new} for dgm {command}; pass {new}"
    return None


def check_flags(parser: argparse.ArgumentParser, args: Sequence[str]) -> None:
    """Refuse a flag ``parser`` does not know, with its usage and the closest flag it does
    (before argparse, whose complaint about a missing required flag would come first)."""
    known = [o for action in parser._actions for o in action.option_strings]
    for arg in args:
        if arg == "--":
            return
        if not re.match(r"--?[A-Za-z]", arg):  # values, including negative numbers
            continue
        name = arg.split("=", 1)[0]
        if name in known or (not name.startswith("--") and name[:2] in known):  # -n4
            continue
        close = [MEANT[name]] if MEANT.get(name) in known else []
        close = close or difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"see {parser.prog} --help"
        parser.error(f"unrecognized argument {name}: {hint}")


def _model_name(argv: Sequence[str]) -> str | None:
    """MODEL of ``dgm train MODEL ...``, needed before parsing to add its config flags."""
    args = list(argv)
    if len(args) >= 2 and args[0] == "train" and not args[1].startswith("-"):
        return args[1]
    return None


def _sampled_model(argv: Sequence[str]) -> str | None:
    """The model of the run in ``dgm sample RUN_DIR ...`` (or ``dgm eval RUN_DIR``), to add
    its sampling options."""
    from dgm.run_dir import Run

    args = list(argv)
    if len(args) >= 2 and args[0] in ("sample", "eval") and not args[1].startswith("-"):
        try:
            return Run.open(args[1]).name
        except (OSError, ValueError):
            return None  # the verb reports the missing or unreadable run
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    model = _model_name(argv)
    if model is not None and model not in available_models():
        close = difflib.get_close_matches(model, available_models(), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        print(
            f"dgm train: error: unknown model {model!r}; {hint}available: "
            f"{', '.join(available_models())}",
            file=sys.stderr,
        )
        return 2
    parser, commands_parsers = build_parser(model, _sampled_model(argv))
    if argv and argv[0] in commands_parsers:
        renamed = _renamed(argv[0], argv[1:])
        if renamed is not None:
            print(f"dgm {argv[0]}: error: {renamed}", file=sys.stderr)
            return 2
        check_flags(commands_parsers[argv[0]], argv[1:])
    ns, extra = parser.parse_known_args(argv)
    if extra:  # e.g. a second run directory: the subcommand's usage, not the top-level one
        commands_parsers[ns.command].error(f"unrecognized arguments: {' '.join(extra)}")
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}
    for group in GROUPS:
        commands |= group.COMMANDS
    try:
        common.check_counts(ns, commands_parsers[ns.command])
        if getattr(ns, "threads", None) is not None:
            torch.set_num_threads(ns.threads)
        return commands[ns.command](ns)
    except ValueError as e:
        print(f"dgm {ns.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # our own messages, else the path and the reason
        print(f"dgm {ns.command}: error: {common.os_error_line(e)}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        from dgm.train.trainer import TrainingDiverged

        if isinstance(e, TrainingDiverged):
            from dgm.run_dir import has_weights

            again = ""
            if ns.command == "train" and not has_weights(ns.out):
                again = " (then the same dgm train --out starts afresh)"
            if common.rank_zero():
                print(f"dgm {ns.command}: training stopped: {e}{again}", file=sys.stderr)
            return 3
        raise
    finally:
        from dgm.train import distributed

        distributed.teardown()
