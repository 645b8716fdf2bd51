"""benchmarks.suite_timings: test files and benchmarks land in their family, and a JUnit
report's times are summed per family."""

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def timings(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("benchmarks.suite_timings")


def test_families_of_test_files_and_benchmarks(timings):
    assert timings.family("tests/models/test_pixelcnn.py") == "autoregressive"
    assert timings.family("tests/models/test_hmm.py") == "classical"
    assert timings.family("tests/models/test_ddpm.py") == "diffusion"
    assert timings.family("tests/tasks/test_design.py") == "tasks"
    assert timings.family("side_by_side_flows") == "flow"
    assert timings.family("tests/test_model.py") == timings.OTHER


def test_a_junit_report_is_summed_by_family(timings, tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.models.test_pixelcnn" name="a" time="1.5"/>'
        '<testcase classname="tests.models.test_pixelcnn" name="b" time="0.25"/>'
        '<testcase classname="tests.models.test_flows" name="c" time="2"/>'
        "</testsuite></testsuites>"
    )
    got = timings.junit_times(report)
    assert got == {
        "autoregressive": {"tests": 2, "seconds": 1.75},
        "flow": {"tests": 1, "seconds": 2.0},
    }
    lines = timings.table({"tests": {"families": got, "wall_s": None, "cpu_s": None}})
    assert any(line.startswith("| flow | 1 | 2.0 | 53% |") for line in lines), lines


def test_every_benchmark_runs_from_make_bench(timings):
    """`make bench` calls each module's ``run(quick=...)`` and nothing else: every other
    parameter has a default, and every module has a table of the page."""
    import inspect

    from benchmarks import tables
    from benchmarks.run import BENCHMARKS

    for name in BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{name}")
        params = inspect.signature(module.run).parameters
        assert "quick" in params, name
        required = [p for p in params.values() if p.default is inspect.Parameter.empty]
        assert not [p.name for p in required if p.name != "quick"], name
        assert name in tables.PAGE, name
