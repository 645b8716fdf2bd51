"""The compression benchmark's own pieces: the lzma check flags a model file that loses to
lzma where the model's NLL wins (and nothing else), and the table states the words' order
effect from the shuffled-order rows."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch):  # benchmarks/ is a top-level folder
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.compression as module

    return module


def _model(nll: float, file: float) -> dict:
    return {
        "nll_bits_per_dim": nll,
        "file_bits_per_dim": file,
        "file_overhead_vs_nll": file / nll - 1,
        "header_bytes": 40,
        "steps": 10,
        "decoded_n": 2,
        "encode_dims_per_s": 1e3,
        "decode_dims_per_s": 1e3,
    }


def _coder(bits: float) -> dict:
    return {"bits_per_dim": bits, "encode_dims_per_s": 1e6, "decode_dims_per_s": 1e6}


def _words(models: dict) -> dict:
    return {
        "key": "text",
        "data": "words",
        "n": 2,
        "raw_bits_per_dim": 8.0,
        "models": models,
        "baselines": {
            "lzma": _coder(2.8),
            "gzip": _coder(3.2),
            "lzma, shuffled order": _coder(3.6),
            "gzip, shuffled order": _coder(3.9),
        },
    }


def test_lzma_check_flags_only_a_file_that_loses_where_the_nll_wins(bench) -> None:
    s = _words(
        {
            "good": _model(3.0, 3.01),  # loses to sorted lzma as its NLL does, beats shuffled
            "bad": _model(3.5, 3.7),  # NLL beats shuffled lzma (3.6), the file does not
        }
    )
    checks = {(c["model"], c["baseline"]): c for c in bench.lzma_check(s)}
    assert set(checks) == {
        (m, b) for m in ("good", "bad") for b in ("lzma", "lzma, shuffled order")
    }
    assert not checks["good", "lzma"]["nll_wins"] and checks["good", "lzma"]["holds"]
    assert checks["good", "lzma, shuffled order"]["file_wins"]
    assert checks["bad", "lzma, shuffled order"]["nll_wins"]
    assert not checks["bad", "lzma, shuffled order"]["holds"]
    assert [k for k, c in checks.items() if not c["holds"]] == [("bad", "lzma, shuffled order")]


def test_table_states_the_order_effect_and_the_pairs_that_hold(bench) -> None:
    lines = "\n".join(bench.table({"sets": [_words({"gpt": _model(3.3, 3.31)})]}))
    assert "lzma 2.800 -> 3.600" in lines and "gzip 3.200 -> 3.900" in lines
    assert "gpt beat every shuffled-order coder" in lines
    assert "1 of 1 such pairs hold (gpt 3.310 vs lzma, shuffled order 3.600)" in lines
    assert "| words (n=2) | lzma, shuffled order | 3.6000 |" in lines
