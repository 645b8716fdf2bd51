"""dgm report and dgm compare: where they write, and one-line errors (exit 2, the fix named,
no traceback) for a missing folder, a folder that is not a run, one run to compare, a bad
count and an --out that is a folder."""

import pytest

from dgm.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A GMM on moons, two EM steps."""
    out = tmp_path_factory.mktemp("runs") / "gmm"
    argv = ["train", "gmm", "--data", "moons", "--steps", "2", "--device", "cpu"]
    assert main([*argv, "--sample-every", "0", "--threads", "1", "--out", str(out)]) == 0
    return out


def test_report_writes_into_the_run_or_out(run, tmp_path, capsys, monkeypatch):
    assert main(["report", str(run), "--eval-n", "50", "-n", "32"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {run / 'report.html'}"
    assert (run / "report.html").read_text().startswith("<!DOCTYPE html>")
    out = tmp_path / "new" / "r.html"
    assert main(["report", str(run), "--out", str(out), "--eval-n", "50", "-n", "32"]) == 0
    assert out.is_file()
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(run), str(run / "report.html"), "--eval-n", "5"]) == 2
    assert "report.html is a file, not a run directory" in capsys.readouterr().err
    assert main(["compare", str(run), str(run), "--eval-n", "50", "-n", "32"]) == 0
    assert (tmp_path / "compare.html").is_file()
    assert "wrote compare.html (2 runs)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["report", "{missing}"], "does not exist: give a run directory"),
        (["report", "{empty}"], "has no config.json: give a run directory"),
        (["report", "{run}", "--eval-n", "0"], "--eval-n must be at least 1"),
        (["report", "{run}", "-n", "0"], "-n must be at least 1"),
        (["report", "{run}", "--out", "{empty}"], "is a folder: name an HTML file"),
        (["compare", "{run}"], "at least two run directories, got 1: for one run use dgm report"),
        (["compare", "{run}", "{missing}"], "nowhere does not exist: give a run directory"),
        (["compare", "{empty}", "{run}"], "has no config.json"),
    ],
)
def test_wrong_inputs_exit_2_with_the_fix(run, tmp_path, capsys, argv, words):
    names = {"run": run, "missing": tmp_path / "nowhere", "empty": tmp_path}
    argv = [a.format(**names) for a in argv]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"dgm {argv[0]}: error: "), err
    assert words in err[0]


def test_best_and_no_ema_reach_the_pages_loading(run, tmp_path, monkeypatch):
    """--best and --no-ema choose the weights both pages load (defaults: the last, EMA)."""
    import dgm.report.render as render

    seen = []

    def record(runs, options, *, device, best, ema):
        seen.append((best, ema, str(device)))
        return None

    monkeypatch.setattr(render, "gather", record)
    monkeypatch.setattr(render, "gather_comparison", record)
    monkeypatch.setattr(render, "render_report", lambda report: "<p>")
    monkeypatch.setattr(render, "render_comparison", lambda comparison: "<p>")
    out = ["--out", str(tmp_path / "p.html")]
    assert main(["report", str(run), *out]) == 0
    assert main(["report", str(run), "--best", "--no-ema", *out]) == 0
    assert main(["compare", str(run), str(run), "--best", *out]) == 0
    assert main(["compare", str(run), str(run), "--no-ema", *out]) == 0
    assert seen == [(False, True, "cpu"), (True, False, "cpu"), (True, True, "cpu"),
                    (False, False, "cpu")]  # fmt: skip
