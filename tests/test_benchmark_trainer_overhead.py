"""benchmarks.trainer_overhead stores the trainer's step over the bare loop's, the right way
round, as a ratio of medians and as the median of per-round ratios (wall and CPU)."""

from __future__ import annotations

import pytest
from benchmarks import trainer_overhead as overhead

from dgm.data import DataConfig


def test_the_ratios_are_the_trainers_time_over_the_bare_loops(monkeypatch) -> None:
    monkeypatch.setattr(overhead, "fashion_mnist_root", lambda: None)
    monkeypatch.setattr(
        overhead, "DataConfig", lambda **kw: DataConfig("digits", binarize="static")
    )
    monkeypatch.setattr(overhead, "_trainer_round", lambda trainer, steps: (0.4, 0.6))  # s
    monkeypatch.setattr(overhead, "_bare_round", lambda model, opt, x, steps: (0.2, 0.2))
    monkeypatch.setattr(overhead, "write_result", lambda *a, **kw: "nowhere")
    record = overhead.run(quick=True)
    assert record["trainer_ms_per_step"] == pytest.approx(1000 * 0.4 / record["steps_per_round"])
    assert record["ratio_trainer_over_bare"] == pytest.approx(2.0)
    assert record["ratio_paired_median"] == pytest.approx(2.0)
    assert record["cpu_ratio_trainer_over_bare"] == pytest.approx(3.0)
    assert record["cpu_ratio_paired"]["median"] == pytest.approx(3.0)
