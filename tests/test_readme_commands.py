"""Every ``dgm`` command that README.md and docs/*.md show parses: the model and dataset
exist and every flag is one the command takes (a renamed flag or a typo in the docs fails
here). Sample and eval lines are parsed with the sampling options of the model their run
directory was trained with: the ``dgm train ... --out DIR`` line for that DIR on the same
page, or else on another page."""

import re
import shlex
from pathlib import Path

import pytest

import dgm
from dgm.cli.parser import build_parser, check_flags

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def page_commands(page: Path) -> list[list[str]]:
    """The argument lists of the inline ``dgm ...`` commands of a page that name a real
    model or a run directory (``runs/...``), joined across line breaks; placeholders such
    as ``dgm train MODEL --help`` are prose, not commands. Trailing ``# comments`` of
    command lines in code blocks are dropped."""
    text = page.read_text()
    models = set(dgm.available_models())
    found = []
    codes = re.findall(r"`(dgm [a-z]+\s[^`]*)`", text)
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("dgm ") and "$" not in line:  # not shell loops' templates
                codes.append(line)
    for code in codes:
        args = shlex.split(" ".join(code.split()))[1:]
        if len(args) < 2:
            continue
        if (args[0] == "train" and args[1] in models) or args[1].startswith("runs/"):
            found.append(args)
    return found


def trained(commands: list[list[str]]) -> dict[str, str]:
    """Run directory -> model, from the ``dgm train`` lines among ``commands``."""
    return {
        args[args.index("--out") + 1]: args[1]
        for args in commands
        if args[0] == "train" and "--out" in args
    }


BY_PAGE = {page.name: page_commands(page) for page in PAGES}
ALL_TRAINED = {k: v for cmds in BY_PAGE.values() for k, v in trained(cmds).items()}
CASES = [(name, args) for name, cmds in BY_PAGE.items() for args in cmds]


def test_the_docs_show_commands_of_every_verb():
    verbs = {args[0] for _, args in CASES}
    expected = {"train", "resume", "eval", "sample", "complete", "anomaly", "impute"}
    expected |= {"classify", "interpolate", "represent", "design", "compress", "decompress"}
    expected |= {"report", "compare"}
    assert expected <= verbs, expected - verbs


def test_every_model_has_a_line_in_the_readme_and_in_models_md():
    for page in ("README.md", "models.md"):
        models = {args[1] for args in BY_PAGE[page] if args[0] == "train"}
        assert set(dgm.available_models()) <= models, (page, set(dgm.available_models()) - models)


@pytest.mark.parametrize("page,args", CASES, ids=[f"{p}: {' '.join(a)[:60]}" for p, a in CASES])
def test_a_docs_command_parses(page, args):
    model = args[1] if args[0] == "train" else None
    runs = {**ALL_TRAINED, **trained(BY_PAGE[page])}  # the page's own train line first
    sampled = runs.get(args[1]) if args[0] in ("sample", "eval") else None
    if args[0] == "sample":
        assert sampled is not None, f"no page trains {args[1]}"
    parser, commands = build_parser(model, sampled)
    check_flags(commands[args[0]], args[1:])  # exits (SystemExit) on an unknown flag
    _, extra = parser.parse_known_args(args)
    assert not extra, f"unparsed: {extra}"
