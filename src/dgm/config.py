"""Config dataclasses <-> JSON and <-> command-line flags, written once for every config.

Every model, the trainer and the data have one config dataclass each; ``config.json`` in a
run directory holds them as plain JSON and the CLI builds one ``--flag`` per field, so
nothing is configured twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import re
import types
import typing
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``, evaluated once per class and process (building the
    CLI's parser asked it once per field); read-only."""
    return typing.get_type_hints(cls)


def to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as JSON-ready values (tuples become lists)."""
    return dataclasses.asdict(config)


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build ``cls`` from JSON values, coercing lists to tuples and dicts of nested
    dataclass fields to those dataclasses; unknown keys are an error. A class with its
    own JSON form (a ``from_json(values)`` classmethod: ``DataConfig``, which also reads
    the form older runs wrote) builds itself."""
    if hasattr(cls, "from_json"):
        return cls.from_json(values)  # type: ignore[attr-defined]
    hints = type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; fields: {sorted(names)}")
    return cls(**{k: _coerce(hints[k], v, f"{cls.__name__}.{k}") for k, v in values.items()})


def _coerce(tp: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):  # a nested config
        return from_dict(tp, value)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where)
    if origin is tuple:
        (item, *_rest) = typing.get_args(tp)
        if isinstance(value, (int, float, str)):
            value = [value]
        return tuple(_coerce(item, v, where) for v in value)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ValueError(f"{where} must be one of {typing.get_args(tp)}, got {value!r}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise ValueError(f"{where} must be {tp.__name__}, got {value!r}")
    return value


# -- command-line flags ------------------------------------------------------------------


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def option(default: Any = dataclasses.MISSING, *, flag: str | None = None, **argparse: Any) -> Any:
    """A dataclass field whose command-line flag needs more than its name and type: another
    ``flag`` (``"-n"``, ``"--ood"``; ``"IN"`` with ``positional=True`` for a positional),
    ``minimum`` (the smallest count it takes, where the count rule of ``check_counts`` does
    not fit), or argparse keywords (``metavar``, ``choices``, ``action``, ``type``). No
    ``default``: a required flag (or positional). ``add_arguments`` reads them."""
    meta = {"flag": flag, **argparse}
    return dataclasses.field(default=default, metadata=meta)


def add_arguments(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    skip: tuple[str, ...] = (),
    unset: str = "none",
    prefix: str = "",
    flags: dict[str, str] | None = None,
) -> None:
    """One flag per field of ``cls`` (``latent_dim`` -> ``--latent-dim``), default unset so
    that only the flags given on the command line override the dataclass defaults.
    ``unset`` is how the help text shows a default of None; ``prefix`` goes before each
    field's name in the flag and its namespace entry (``sample_`` -> ``--sample-steps``);
    ``flags`` gives some fields another flag (``{"steps": "--sampling-steps"}``), the
    field name (with ``prefix``) staying the dest. A field made with ``option`` may name
    its flag, a positional, a minimum or argparse keywords; one without a default is
    required. Each count's action carries ``minimum`` (``count_minimum``), which
    ``check_parsed_counts`` checks after parsing."""
    hints = type_hints(cls)
    comments = field_comments(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp = hints[f.name]
        meta = dict(f.metadata)
        name = meta.pop("flag", None) or (flags or {}).get(f.name, flag(prefix + f.name))
        positional = meta.pop("positional", False)
        minimum = meta.pop("minimum", count_minimum(cls, f.name))
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS}
        if not positional:
            kwargs["dest"] = prefix + f.name
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _parser_for(tp)
            kwargs["metavar"] = _metavar(tp)
        comment = comments.get(f.name, "")
        if _default(f) is dataclasses.MISSING:
            kwargs["required"] = not positional
            kwargs["help"] = comment
        elif "default:" in comment:  # the comment says what the default means
            kwargs["help"] = comment
        else:
            shown = unset if _default(f) is None else _show(_default(f))
            kwargs["help"] = f"{comment} (default: {shown})".strip()
        kwargs |= meta
        if kwargs.get("action") == "store_true":  # a switch that takes no value
            kwargs.pop("type", None)
            kwargs.pop("metavar", None)
        if positional:
            kwargs.pop("required", None)
            kwargs["metavar"] = meta.get("metavar", name)
            action = parser.add_argument(prefix + f.name, **kwargs)
        else:
            action = parser.add_argument(name, **kwargs)
        action.minimum = minimum


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def options_from(ns: Any, cls: type[T], prefix: str = "") -> T:
    """The options dataclass ``cls`` of a namespace parsed with ``add_arguments(..., cls)``:
    the flags given, the dataclass defaults for the rest."""
    values = vars(ns)
    names = [f.name for f in dataclasses.fields(cls)]
    return cls(**{n: values[prefix + n] for n in names if prefix + n in values})


def field_comments(cls: type) -> dict[str, str]:
    """The ``# why`` comment after each field of a config dataclass (and its bases), or,
    for a field without one, the comment lines just above it: the CLI's help text, so a
    field is documented once, where it is declared."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            out |= _own_field_comments(klass)
    return out


@functools.cache
def _own_field_comments(klass: type) -> dict[str, str]:
    """``field_comments`` of the lines of ``klass``'s own source, read once per class and
    process: ``inspect.getsource`` parses the whole module each call, which made building
    the CLI's parser take about 0.45 CPU-s (85 % of it here). Read-only: ``field_comments``
    merges it into a new dict."""
    try:
        source = inspect.getsource(klass)
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    above: list[str] = []
    for line in source.splitlines():
        comment = re.match(r"^\s+#\s*(.*)$", line)
        if comment:
            above.append(comment.group(1).strip())
            continue
        field = re.match(r"^\s+(\w+):[^#\n]*?(?:#\s*(.+))?$", line)
        if field and (field.group(2) or above):
            out[field.group(1)] = (field.group(2) or " ".join(above)).strip()
        above = []
    return out


def _parser_for(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        inner = _parser_for(next(a for a in typing.get_args(tp) if a is not type(None)))

        def optional(text: str) -> Any:
            return None if text.lower() == "none" else inner(text)

        return optional
    if origin is tuple:
        item = _parser_for(typing.get_args(tp)[0])

        def items(text: str) -> tuple:
            text = text.strip().strip("()[]")  # '', '()' and '[]' all mean the empty tuple
            return tuple(item(t) for t in text.split(",") if t.strip())

        return items
    if origin is Literal:
        choices = typing.get_args(tp)

        def choice(text: str) -> Any:
            if text not in choices:
                raise argparse.ArgumentTypeError(f"choose from {', '.join(map(str, choices))}")
            return text

        return choice
    return tp


def _metavar(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "{" + ",".join(map(str, typing.get_args(tp))) + "}"
    if origin is tuple:
        return "N,N,..."
    if origin in (Union, types.UnionType):
        return _metavar(next(a for a in typing.get_args(tp) if a is not type(None))) + "|none"
    return getattr(tp, "__name__", str(tp)).upper()


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "(empty)"
    return str(value)


# -- sizes and counts ----------------------------------------------------------------------

# Config fields that count or size something (layer widths, channels, steps, components):
# a negative value is never meaningful, and 0 only where the field's default is 0.
_COUNT_FIELD = re.compile(
    r"(^|_)(sizes|size|channels|steps|layers|layer|blocks|heads|head|dim|components|"
    r"categories|embd|features|k|count|n|m|samples|evaluations|seeds|initial|rows)$"
)


def count_minimum(cls: type, name: str) -> int | None:
    """The smallest value count field ``name`` of dataclass ``cls`` takes (0 where its
    default is 0, else 1), or None when it is not a count (``check_counts``'s rule); a field
    made with ``option(minimum=...)`` states its own."""
    found = {f.name: f for f in dataclasses.fields(cls)}[name]
    if "minimum" in found.metadata:
        return found.metadata["minimum"]
    tp = type_hints(cls)[name]
    if not _COUNT_FIELD.search(name) or int not in (tp, *typing.get_args(tp)):
        return None  # not named as a count, or not integers (a float pseudo-count)
    return 0 if found.default == 0 else 1


def count_error(shown: str, value: Any, low: int) -> str:
    """The one message for a count below its minimum, naming the flag ``shown``."""
    return f"{shown} must be at least {low}, got {_show(value)}"


def check_counts(cls: type, values: dict[str, Any], flags: dict[str, str] | None = None) -> None:
    """Refuse a count or size field of config dataclass ``cls`` in ``values`` that is
    negative, or 0 where 0 means nothing (the field's default is not 0); a tuple of sizes
    needs every entry >= 1. The message names the flag (``flags`` as in ``add_arguments``)
    and the values it takes."""
    names = {f.name for f in dataclasses.fields(cls)}
    for name, value in values.items():
        if name not in names or isinstance(value, bool):
            continue
        low = count_minimum(cls, name)
        if low is None:
            continue
        shown = (flags or {}).get(name, flag(name))
        if isinstance(value, tuple):
            if any(isinstance(v, int) and v < 1 for v in value):
                raise ValueError(f"{shown} must be positive integers, got {_show(value)}")
        elif isinstance(value, int) and value < low:
            raise ValueError(count_error(shown, value, low))
