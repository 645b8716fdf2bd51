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


def test_only_reruns_some_benchmarks_and_keeps_the_other_rows(timings, monkeypatch, tmp_path):
    from benchmarks import common

    monkeypatch.setattr(common, "QUICK_RESULTS", tmp_path)
    calls = []

    def fake(cmd):
        calls.append(cmd[-1])
        return 0, 2.0, 1.5

    monkeypatch.setattr(timings, "timed_process", fake)
    old = [
        {"benchmark": "hmm", "family": "classical", "wall_s": 9.0, "cpu_s": 9.0, "exit": 1},
        {"benchmark": "ebm", "family": "energy", "wall_s": 5.0, "cpu_s": 4.0, "exit": 0},
    ]
    common.write_result(timings.NAME, {"bench": old}, quick=True, seed=0, steps=None, wall_time_s=1)
    timings.run(quick=True, part="bench", only=["hmm"])
    rows = common.read_results(tmp_path)[timings.NAME]["bench"]
    assert calls == ["hmm"]
    assert rows == [{**old[0], "wall_s": 2.0, "cpu_s": 1.5, "exit": 0}, old[1]]


def test_a_process_costs_its_user_and_system_time(timings, monkeypatch):
    """CPU s of a command: the user and the system time its children used, together."""
    import types

    usage = iter([types.SimpleNamespace(ru_utime=1.0, ru_stime=0.5),
                  types.SimpleNamespace(ru_utime=3.0, ru_stime=1.5)])  # fmt: skip
    monkeypatch.setattr(timings.resource, "getrusage", lambda who: next(usage))
    monkeypatch.setattr(
        timings.subprocess, "run", lambda *a, **kw: types.SimpleNamespace(returncode=0)
    )
    code, wall, cpu = timings.timed_process(["true"])
    assert code == 0 and cpu == 3.0 and wall >= 0
