"""The likelihood ratio's sign, end to end, on data where the right answer is known.

In-distribution x have D = 2 + 30 binary dimensions: two "semantic" ones, each 1 with
probability 0.9, and 30 "background" ones, each 1 with probability 0.3. The outliers have
no semantics (both 0) and a simpler background (each 1 with probability 0.05), so the raw
likelihood prefers them (the background's 30 dimensions outweigh the two semantic ones:
about 16.6 nats against 19.0), as deep models prefer MNIST to Fashion-MNIST. The background
model is fitted to the same background with the semantics destroyed (both dimensions
uniform), the role of Ren et al.'s mutations: the background terms cancel in
LLR = log p_fg − log p_bg, leaving the semantic ones, so −LLR must rank almost every outlier
above almost every in-distribution x (AUROC ≈ 0.99), and swapping the two models must
invert it. The models are naive Bayes with one class: products of Bernoullis fitted
exactly, so nothing here depends on training luck.
"""

import json

import pytest
import torch

import dgm
from dgm.cli import main
from dgm.run_dir import load_model
from dgm.tasks import anomaly

SEMANTIC, BACKGROUND, N = 2, 30, 3000


def bits(n, p, seed):
    return (torch.rand(n, p.numel(), generator=torch.Generator().manual_seed(seed)) < p).float()


def sets():
    """(in-distribution, background-only, outlier) x, each (N, 32)."""
    semantic, background = torch.full((SEMANTIC,), 0.9), torch.full((BACKGROUND,), 0.3)
    flat = torch.full((SEMANTIC,), 0.5)
    inside = bits(N, torch.cat([semantic, background]), 0)
    background_only = bits(N, torch.cat([flat, background]), 1)
    outliers = bits(N, torch.cat([torch.zeros(SEMANTIC), torch.full((BACKGROUND,), 0.05)]), 2)
    return inside, background_only, outliers


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs fg (in-distribution) and bg (background only), and the outliers' file."""
    root = tmp_path_factory.mktemp("sign")
    files = {}
    for name, x in zip(("in", "bg", "out"), sets(), strict=True):
        files[name] = root / f"{name}.pt"
        torch.save({"x": x, "y": torch.zeros(len(x), dtype=torch.long)}, files[name])
    quiet = ["--device", "cpu", "--eval-every", "0", "--sample-every", "0", "--threads", "1"]
    for name, data in (("fg", "in"), ("bg", "bg")):
        argv = ["train", "naive_bayes", "--data", "tensors", "--data-root", str(files[data])]
        argv += ["--num-classes", "1", "--steps", "1", *quiet, "--out", str(root / name)]
        assert main(argv) == 0
    return root / "fg", root / "bg", files["out"]


def test_the_task_functions_rank_outliers_by_minus_the_log_likelihood_ratio(runs):
    fg_dir, bg_dir, _ = runs
    fg, bg = load_model(fg_dir), load_model(bg_dir)
    inside, _, outliers = sets()
    inside, outliers = inside[:1000], outliers[:1000]
    nll = {k: -anomaly.log_likelihood(fg, x) for k, x in (("in", inside), ("out", outliers))}
    bg_nll = {k: -anomaly.log_likelihood(bg, x) for k, x in (("in", inside), ("out", outliers))}
    assert nll["out"].mean() < nll["in"].mean()  # the raw likelihood prefers the outliers
    rows = anomaly.detection_table(
        nll["in"], nll["out"], nll["in"], background_in=bg_nll["in"], background_out=bg_nll["out"]
    )
    auroc = {r["method"]: r["auroc"] for r in rows}
    assert auroc["likelihood"] < 0.5 and auroc["likelihood ratio"] > 0.97
    swapped = (
        anomaly.likelihood_ratio_scores(-bg_nll["in"], -nll["in"]),
        (anomaly.likelihood_ratio_scores(-bg_nll["out"], -nll["out"])),
    )
    assert anomaly.auroc_auprc(*swapped)[0] < 0.03  # the background as numerator: inverted


def test_the_cli_gives_the_same_sign(runs, tmp_path, capsys):
    fg_dir, bg_dir, out_file = runs
    record = tmp_path / "a.json"
    argv = ["anomaly", str(fg_dir), "--ood", "tensors", "--ood-root", str(out_file)]
    argv += ["--background", str(bg_dir), "-n", "1000", "--train-n", "1000", "--split", "test"]
    assert main([*argv, "--json", str(record)]) == 0
    capsys.readouterr()
    auroc = {r["method"]: r["auroc"] for r in json.loads(record.read_text())["rows"]}
    assert auroc["likelihood"] < 0.5 and auroc["likelihood ratio"] > 0.97


@pytest.mark.parametrize("name", ["fvsbn", "pixelcnn"])
def test_per_dimension_log_likelihoods_sum_to_the_log_likelihood(name):
    # the split of a likelihood ratio over pixels (benchmarks.density_tasks) rests on this
    shape = (16,) if name == "fvsbn" else (1, 4, 4)
    model = dgm.create(name, shape).double().eval()
    x = bits(5, torch.full((16,), 0.4), 3).view(5, *shape).double()
    per_dim = anomaly.dimension_log_likelihood(model, x)
    assert per_dim.shape == (5, 16) and bool((per_dim <= 0).all())
    torch.testing.assert_close(per_dim.sum(1), anomaly.log_likelihood(model, x))
    with pytest.raises(ValueError, match="no per-dimension conditionals"):
        anomaly.dimension_log_likelihood(dgm.create("vae", shape), x.float())
