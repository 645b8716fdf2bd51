"""The classical densities from the command line: `dgm train gmm` runs EM through the
trainer (one fit_step per step, converged steps read nothing), `dgm eval` reports the
exact NLL of the saved mixture, `dgm sample` draws; `dgm train kde` stores the training
points, which `dgm.load` brings back at their size."""

import itertools
import json

import torch

import dgm
from dgm.cli import main
from dgm.data import get

QUIET = ["--device", "cpu", "--eval-every", "0", "--sample-every", "0", "--log-every", "1"]


def test_train_eval_sample_a_gmm_on_eight_gaussians(tmp_path, capsys):
    run = tmp_path / "gmm"
    flags = ["--num-components", "8", "--steps", "40", "--num-samples", "2000"]
    assert (
        main(["train", "gmm", "--data", "eight_gaussians", *flags, *QUIET, "--out", str(run)]) == 0
    )
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    ll = [r["log_likelihood"] for r in lines if "log_likelihood" in r]
    assert len(ll) >= 10 and all(b >= a - 1e-5 for a, b in itertools.pairwise(ll))
    model = dgm.load(run)
    assert bool(model.converged)  # well before 40 steps
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    data = get("eight_gaussians", "test", num_samples=2000)
    test = data.x
    with torch.no_grad():
        nll = -model.log_prob(test).double().mean().item()
    assert out["bound"] == "exact" and abs(out["nll"] - nll) < 1e-5
    true = -data.density.log_prob(test).double().mean().item()
    assert nll < true + 0.1  # near the true density's own NLL
    assert main(["sample", str(run), "-n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()


def test_train_a_kde_on_moons_and_reload_its_points(tmp_path, capsys):
    run = tmp_path / "kde"
    flags = ["--bandwidth", "validation", "--steps", "2", "--num-samples", "500"]
    assert main(["train", "kde", "--data", "moons", *flags, *QUIET, "--out", str(run)]) == 0
    model = dgm.load(run)
    train = get("moons", "train", num_samples=500)
    assert model.points.shape == (len(train), 2)
    assert torch.equal(model.points.sort(0).values, train.x.float().sort(0).values)
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    test = get("moons", "test", num_samples=500).x
    with torch.no_grad():
        assert abs(out["nll"] + model.log_prob(test).double().mean().item()) < 1e-5
