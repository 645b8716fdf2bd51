"""The command line refuses model configs whose flags would collide with its own, every
registered model's options reach the real parsers with help text, and the registry
itself knows nothing of the command line."""

import dataclasses
import sys

import pytest
import torch

import dgm
from dgm.cli.common import (
    SAMPLE_CLI_FLAGS,
    TRAIN_CLI_FLAGS,
    check_model_flags,
    reserved_train_flags,
)
from dgm.cli.parser import build_parser
from dgm.config import from_dict
from dgm.model import GenerativeModel
from dgm.registry import config_for_data, register, spec, unregister


@pytest.mark.parametrize("field", ["steps", "lr", "seed", "scale", "batch_size", "device", "out"])
def test_a_config_field_that_collides_with_a_flag_is_refused_when_parsers_are_built(field):
    config = dataclasses.make_dataclass("Bad", [(field, int, dataclasses.field(default=1))])

    class Model(GenerativeModel):
        pass

    register("bad_model", config)(Model)
    try:
        with pytest.raises(ValueError, match=f"{field!r} collides with the flag --"):
            check_model_flags("bad_model")
        with pytest.raises(ValueError, match=f"{field!r} collides with the flag --"):
            build_parser("bad_model")
    finally:
        unregister("bad_model")


def test_sample_options_that_collide_are_refused():
    @dataclasses.dataclass
    class Options:
        seed: int = 0

    class Model(GenerativeModel):
        sample_options = Options

    @dataclasses.dataclass
    class Config:
        width: int = 3

    register("bad_sampler", Config)(Model)
    try:
        with pytest.raises(ValueError, match="sample option field 'seed' collides"):
            build_parser(None, "bad_sampler")
    finally:
        unregister("bad_sampler")


def test_nested_configs_are_refused_and_from_dict_builds_them():
    @dataclasses.dataclass
    class Inner:
        width: int = 3

    @dataclasses.dataclass
    class Outer:
        inner: Inner = dataclasses.field(default_factory=Inner)

    class Model(GenerativeModel):
        pass

    register("nested", Outer)(Model)
    try:
        with pytest.raises(ValueError, match="nested dataclass; keep configs flat"):
            check_model_flags("nested")
    finally:
        unregister("nested")
    assert from_dict(Outer, {"inner": {"width": 5}}) == Outer(Inner(5))


@pytest.mark.parametrize("name", dgm.available_models())
def test_every_model_fits_the_train_and_sample_parsers(name, tmp_path):
    _, parsers = build_parser(name, name)  # argparse raises on any duplicate flag
    reserved = set(reserved_train_flags()) | {"root"}  # --data-root stores into root
    model_fields = {f.name for f in dataclasses.fields(spec(name).config_cls)}
    options = spec(name).cls.sample_options
    option_fields = {f.name for f in dataclasses.fields(options)} if options else set()
    pictures = {f"sample_{f}" for f in option_fields}  # --sample-steps ...: samples/ pictures
    train_dests = {a.dest for a in parsers["train"]._actions} - model_fields - pictures
    assert train_dests <= reserved, f"flags the registry does not reserve: {train_dests - reserved}"
    sample_dests = {a.dest for a in parsers["sample"]._actions} - option_fields
    assert sample_dests <= set(SAMPLE_CLI_FLAGS)
    assert set(TRAIN_CLI_FLAGS) >= {"model", "data", "out"}
    for parser, fields in ((parsers["train"], model_fields), (parsers["sample"], option_fields)):
        for action in parser._actions:  # every model option reaches the CLI with help text
            if action.dest in fields:
                assert action.help and action.help.strip(), f"--{action.dest} has no help"
                fields = fields - {action.dest}
        assert not fields, f"{name} options without a flag: {sorted(fields)}"


def test_the_registry_knows_nothing_of_the_command_line():
    import ast
    import inspect

    import dgm.registry

    tree = ast.parse(inspect.getsource(dgm.registry))
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not any(m.startswith("dgm.cli") or m.startswith("dgm.train") for m in imported)
    assert not hasattr(dgm.registry, "TRAIN_CLI_FLAGS")


@pytest.mark.parametrize("text", ["", "()", "[]"])
def test_an_empty_tuple_flag_means_affine_maps_as_the_help_says(text):
    _, parsers = build_parser("vae")
    ns = parsers["train"].parse_args(
        ["vae", "--data", "digits", "--steps", "1", "--out", "r", "--hidden-sizes", text]
    )
    assert ns.hidden_sizes == ()
    model = dgm.create("vae", (4,), hidden_sizes=ns.hidden_sizes)
    assert model.log_prob(torch.zeros(2, 4)).shape == (2,)
    assert "'' for none" in parsers["train"].format_help()


def test_discrete_data_set_num_levels_only_where_it_defaults_to_real_x():
    from dgm.data.dataset import TensorData

    def data(x, **kw):
        return TensorData(x, torch.zeros(len(x), dtype=torch.long), name="t", **kw)

    byte = data(torch.randint(0, 256, (6, 1, 2, 2)), value_range=(0, 255))
    binary = data(torch.randint(0, 2, (6, 1, 2, 2)).float())
    real = data(torch.rand(6, 1, 2, 2))
    assert config_for_data("ddpm", byte, {})["num_levels"] == 256
    assert config_for_data("ddpm", binary, {})["num_levels"] == 2
    assert "num_levels" not in config_for_data("ddpm", real, {})
    # dynamic binarization stores grey values and binarizes each batch: binary all the same
    dynamic = data(torch.rand(6, 1, 2, 2), dynamic_binarize=True)
    assert config_for_data("ddpm", dynamic, {})["num_levels"] == 2
    assert config_for_data("ddpm", byte, {"num_levels": 0}) == {"num_levels": 0}  # as given
    assert "num_levels" not in config_for_data("glow", binary, {})  # its default is not 0


def test_a_model_module_imported_twice_registers_once_and_a_different_class_is_refused(
    tmp_path, monkeypatch
):
    """One model file's doctests (``pytest src/dgm/models/autoregressive/nade.py`` with
    ``--import-mode=importlib``) import the module a second time under another name: its
    classes are new objects from the same ``class`` statements, and registering them again
    keeps the first registration; a genuinely different class under a taken name is still
    refused."""
    import importlib.util

    from dgm.models.autoregressive import nade

    spec_ = importlib.util.spec_from_file_location("nade_copy", nade.__file__)
    copy = importlib.util.module_from_spec(spec_)
    monkeypatch.setitem(sys.modules, "nade_copy", copy)  # dataclasses look their module up
    spec_.loader.exec_module(copy)  # runs @register("nade", ...) again
    assert copy.NADE is not nade.NADE
    assert spec("nade").cls is nade.NADE  # the first registration stays

    other = tmp_path / "other.py"  # same class name, another file: a different model
    other.write_text(
        "from dgm.model import GenerativeModel\n"
        "from dgm.models.autoregressive.nade import NADEConfig\n"
        "from dgm.registry import register\n\n"
        "@register('nade', NADEConfig)\n"
        "class NADE(GenerativeModel):\n"
        "    pass\n"
    )
    spec_ = importlib.util.spec_from_file_location("other_nade", other)
    module = importlib.util.module_from_spec(spec_)
    monkeypatch.setitem(sys.modules, "other_nade", module)
    with pytest.raises(ValueError, match="'nade' is already registered"):
        spec_.loader.exec_module(module)
    assert spec("nade").cls is nade.NADE
