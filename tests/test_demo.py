"""The demo after an interruption: it reports the step reached, says how to resume and
exits with 130 (``dgm train``'s code for interrupted), never the full step count and 0."""

from __future__ import annotations

import os
import re
import signal
import sys
import time

import pytest

import processes

STEPS = 1_000_000  # far more than the test waits for: only the signal can end training


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is a POSIX signal")
def test_demo_stopped_by_sigterm_reports_the_step_and_exits_130(tmp_path):
    out = tmp_path / "demo"
    proc = processes.python(  # `python -m dgm.demo ...` in a process of its own
        ["-m", "dgm.demo", "--out", out, "--steps", STEPS],
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # two threads on two busy cores thrash
    )
    try:
        deadline = time.monotonic() + 120
        metrics = out / "metrics.jsonl"
        while not (metrics.is_file() and metrics.read_text().strip()):  # the first log line
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no metrics line within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    match = re.search(r"interrupted at step (\d+) of (\d+)", stderr)
    assert match, stderr
    step = int(match.group(1))
    assert 100 <= step < STEPS and int(match.group(2)) == STEPS  # after the first log line
    assert f"dgm resume {out}" in stderr
    assert f"{STEPS} steps in" not in stdout and "NELBO" not in stdout  # no finished-run report
    assert (out / "model.safetensors").is_file()  # the checkpoint the resume continues from
