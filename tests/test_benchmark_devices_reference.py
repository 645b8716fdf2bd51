"""benchmarks.devices_reference: a reference row trained for a fixed time on a device, beside
its CPU reference run. On the CPU both runs are the same run (same data, batches and seed),
so the CPU figures beside the device's must be the device's own."""

import importlib
import json
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def modules(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT))
    common = importlib.import_module("benchmarks.common")
    reference = importlib.import_module("benchmarks.reference")
    devices = importlib.import_module("benchmarks.devices_reference")
    tiny = reference.Reference(
        "tiny", "MADE, 32 hidden", "made", {"name": "digits", "binarize": "static"},
        {"hidden_sizes": (32,)}, 100, 0.01, epochs=3, patience=10,
    )  # fmt: skip
    monkeypatch.setattr(reference, "RUNS", (tiny,))
    monkeypatch.setattr(reference, "SLICE_FLOOR_S", 0.0)
    monkeypatch.setattr(devices, "ROWS", ("tiny",))
    monkeypatch.setattr(devices, "runs_dir", lambda name, quick: tmp_path / "runs" / name)
    monkeypatch.setattr(common, "QUICK_RESULTS", tmp_path / "results")
    return reference, devices, tiny


def test_a_row_on_the_cpu_meets_its_own_cpu_reference_run(modules, tmp_path) -> None:
    reference, devices, tiny = modules
    # the CPU reference run of the row, as benchmarks.reference trains it
    reference.advance(tiny, tmp_path / "runs" / "reference", time.monotonic() + 600, quick=True)
    record = devices.run(quick=True, minutes=10.0, device="cpu")  # finishes before the time

    saved = json.loads((tmp_path / "results" / "devices_reference.json").read_text())
    assert saved["rows"] == record["rows"] and saved["minutes"] == 10.0
    (row,) = record["rows"]
    d, c = row["device"], row["cpu"]
    epochs = reference.QUICK["epochs"]  # quick: the reference runs' quick budget
    assert d["epochs"] == epochs and d["steps"] == epochs * d["steps_per_epoch"]
    assert d["ms_per_step"] > 0 and len(d["curve"]) == epochs
    assert d["best_valid_nll"] == min(nll for _, nll in d["curve"])
    # the same run twice: the CPU's valid NLL at the device's best epoch is the device's
    assert c["valid_nll_at_device_best_epoch"] == d["best_valid_nll"]
    assert c["hours_for_device_steps"] == pytest.approx(c["ms_per_step"] * d["steps"] / 3.6e6)

    lines = devices.table(record)
    (body,) = [line for line in lines if line.startswith("| tiny")]
    assert f"| {d['steps']} ({d['epochs']:.2f}) |" in body
    assert f"({d['best_epoch']:.0f}) |" in body


def test_ms_per_step_is_the_median_over_log_lines_and_skips_a_restarted_clock(
    modules, tmp_path
) -> None:
    """Log lines every 10 steps at 20 ms/step, then a slice resumed at step 30 whose clock
    restarts and reads 1.9 s at its first line (after start-up): that interval is not a
    step time, whatever the clock reads."""
    from dgm import run_dir as rd
    from dgm.config import to_dict
    from dgm.train import TrainConfig

    reference, devices, _ = modules
    run = tmp_path / "run"
    run.mkdir()
    train = to_dict(TrainConfig(steps=100, eval_every=50, device="cpu"))
    (run / rd.CONFIG).write_text(json.dumps({"train": train, "event_shape": [4]}))
    lines = [(10, 0.2), (20, 0.4), (30, 0.6), (40, 1.9), (50, 2.2)]
    lines_text = [json.dumps({"step": s, "train_time_s": t, "loss": 1.0}) for s, t in lines]
    (run / rd.METRICS).write_text("\n".join([*lines_text, '{"step": 50, "valid/nll": 3.0}']))
    slices = [{"from_step": 0, "to_step": 30}, {"from_step": 30, "to_step": 50}]
    (run / reference.SESSIONS).write_text(json.dumps(slices))
    got = devices.summary(run)
    # intervals 20, 20, (130: across the resume, left out), 30 ms/step: median 20
    assert got["ms_per_step"] == pytest.approx(20.0)
    assert got["curve"] == [[1.0, 3.0]] and got["best_epoch"] == 1.0


def test_every_device_row_is_a_reference_run(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    reference = importlib.import_module("benchmarks.reference")
    devices = importlib.import_module("benchmarks.devices_reference")
    assert set(devices.ROWS) <= {r.name for r in reference.RUNS}
    for ref in reference.RUNS:  # the device a row is trained on is the one asked for
        cfg = reference.train_config(ref, 6400, quick=False, device="cuda")
        assert cfg.device == "cuda" and cfg.amp  # bf16 autocast there
        assert cfg.eval_every == cfg.checkpoint_every == -(-6400 // ref.batch_size)


def test_a_fresh_machine_reads_the_cpu_run_from_its_record(modules, tmp_path, monkeypatch):
    """runs/ is not tracked, so a lent GPU machine has no CPU run folder: the CPU side comes
    from the committed record, with the figures the folder gave; a record that predates the
    kept step time gives CPU seconds over its whole slices' steps, marked in the table."""
    import shutil

    reference, devices, _ = modules
    monkeypatch.setattr(reference, "runs_dir", lambda name, quick: tmp_path / "runs" / name)
    monkeypatch.setattr(reference, "plot", lambda runs, path: None)
    reference.run(quick=True, hours=1.0)
    folder = devices.summary(tmp_path / "runs" / "reference" / "tiny")
    shutil.rmtree(tmp_path / "runs")  # the fresh machine
    assert devices.summary(tmp_path / "runs" / "reference" / "tiny") is None
    assert devices.recorded("tiny", quick=True) == folder
    assert folder["ms_per_step"] > 0 and folder["ms_per_step_of"] == "training steps"

    record = devices.run(quick=True, minutes=10.0, device="cpu")
    (row,) = record["rows"]
    assert row["cpu"]["valid_nll_at_device_best_epoch"] == row["device"]["best_valid_nll"]
    assert row["cpu"]["ms_per_step"] == folder["ms_per_step"]
    assert "†" not in next(line for line in devices.table(record) if line.startswith("| tiny"))

    results = tmp_path / "results" / "reference.json"
    old = json.loads(results.read_text())
    del old["runs"]["tiny"]["ms_per_step"]  # a record written before the step time was kept
    results.write_text(json.dumps(old))
    got = devices.recorded("tiny", quick=True)
    cpu_s = old["runs"]["tiny"]["cpu_s"]
    assert got["ms_per_step"] == pytest.approx(1000 * cpu_s / folder["steps"])
    assert got["ms_per_step_of"] == devices.WHOLE_SLICES
    beside = devices.cpu_beside(got, row["device"])
    marked = devices.table({**record, "rows": [{**row, "cpu": beside}]})
    body = next(line for line in marked if line.startswith("| tiny"))
    assert body.count("†") == 2  # the CPU ms/step and the ratio
    results.unlink()
    assert devices.recorded("tiny", quick=True) is None


def test_the_cpu_column_reads_the_cpu_run_at_the_devices_best_epoch(modules) -> None:
    """CPU ÷ device is the CPU's ms/step over the device's (a 4× faster device reads 4.0×),
    and the CPU's valid NLL is read at the device's best epoch, not the CPU's own."""
    _, devices, _ = modules
    cpu = {"curve": [[1, 5.0], [2, 4.0], [3, 3.0]], "ms_per_step": 40.0,
           "ms_per_step_of": "training steps", "epochs": 3.0}  # fmt: skip
    device = {"best_epoch": 1, "steps": 90, "ms_per_step": 10.0, "epochs": 1.2,
              "best_valid_nll": 6.0, "event_shape": [2]}  # fmt: skip
    beside = devices.cpu_beside(cpu, device)
    assert beside["valid_nll_at_device_best_epoch"] == 5.0
    assert beside["hours_for_device_steps"] == pytest.approx(40.0 * 90 / 3.6e6)
    record = {"device": "cuda", "cuda_device": "GPU", "minutes": 1.0,
              "rows": [{"name": "x", "label": "X", "device": device, "cpu": beside}]}  # fmt: skip
    row = next(line for line in devices.table(record) if line.startswith("| x: X"))
    assert "| 4.0× |" in row and "| 5.00 |" in row
