"""Hidden Markov models: dgm's ``hmm`` against hmmlearn, beside char_rnn and gpt on words,
and outlier detection on sequences through ``dgm anomaly``.

1. **dgm vs hmmlearn** (``CategoricalHMM`` / ``GaussianHMM``, hmmlearn 0.3.3), on ``words``
   (web2, the default split; each word's letters and its end token, the padding excluded)
   and on the Gaussian sequence toy ``hmm_gaussian`` (2-D vectors from a known 3-state
   HMM, whose true NLL is given too). Same K, the same initial parameters (dgm's, copied
   into hmmlearn with ``init_params=""``), the same number of Baum-Welch iterations
   (hmmlearn ``tol=-inf``: no early stop), the same M-step (dgm's ``pseudo_count`` is
   hmmlearn's Dirichlet prior − 1 on transitions and emissions; ``covars_prior=0``). dgm
   runs through its trainer (one ``fit_step`` per step, batches of ``EM_BATCH``); fit time
   is wall-clock seconds of the whole fit, one thread each. NLL per token = the test
   split's summed NLL over its real tokens (per time step for the toy).
2. **Beside char_rnn and gpt** on the same words split, each trained by dgm's trainer for
   a short budget (``LM_STEPS`` steps of batch 64: not their best; see the
   ``autoregressive`` benchmark for longer runs): test nats per character.
3. **Outliers**: real words (test split) against the same words with their letters
   shuffled (``--ood shuffled_words``), scored by ``dgm anomaly RUN --ood shuffled_words``
   for the HMM, char_rnn and gpt runs: AUROC of −log p and of the typicality score.

    python -m benchmarks.hmm [--quick] [--part words] [--threads 2]

``--threads 2`` fits nothing new for the tables: it rebuilds each saved dgm vs hmmlearn
comparison from the same start (the row's states, iterations and words) and times the two
whole fits by the wall clock, 5 rounds after a warm-up round, alternating, at 2 threads for
torch and for numpy's BLAS (``benchmarks/alternate.py``), into the saved rows' "threads"
entries; their 1-thread CPU times stay as they are (about 4 minutes on an idle 2-core
machine, nearly all of it hmmlearn's; with ``--quick``, 2 rounds into results/quick/, of
the quick run's fits or, where none is saved there, of the full run's).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import dgm
from benchmarks.alternate import threads_line
from benchmarks.common import existing_payload, fresh_run_dir, log, runs_dir, write_result
from dgm.data import DataConfig
from dgm.data.sequences import TRUE_HMM
from dgm.evaluate.likelihood import evaluate
from dgm.train import TrainConfig, train

NAME = "hmm"
SEED = 0
EM_BATCH = 8192  # sequences per batch of a fit_step (one pass over all of them per step)
# full / quick settings
WORDS_K, QUICK_WORDS_K = 16, 8  # states of the comparison
WORDS_ITERS, QUICK_WORDS_ITERS = 10, 3  # Baum-Welch iterations of the comparison
COMPARE_WORDS, QUICK_COMPARE_WORDS = 5000, 2000  # training words of the comparison
RUN_K, RUN_ITERS, QUICK_RUN_ITERS = 32, 10, 2  # the HMM on the whole split (LM table)
TOY_K, TOY_ITERS, QUICK_TOY_ITERS = 3, 20, 10
LM_STEPS, QUICK_LM_STEPS = 300, 20
SPEED_ROUNDS, QUICK_SPEED_ROUNDS = 5, 2  # --threads: timed rounds of one fit, after one more
OOD_N, QUICK_OOD_N = 5000, 500
LMS = {  # label -> registry name, config, learning rate
    "char_rnn (GRU 128)": ("char_rnn", {"cell": "gru", "hidden_size": 128}, 3e-3),
    "gpt (2 layers, 64 wide)": ("gpt", {"n_layer": 2, "n_head": 4, "n_embd": 64}, 1e-3),
}


def _train_config(steps: int, batch_size: int, lr: float = 1e-3) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=SEED,
        device="cpu",
        warmup_steps=min(100, steps // 10),
        eval_every=0,
        sample_every=0,
        checkpoint_every=steps,
    )


def _real_sequences(x: torch.Tensor, counts: torch.Tensor) -> tuple[np.ndarray, list[int]]:
    """hmmlearn's input: the real tokens of every row, concatenated (N, 1), and lengths."""
    keep = torch.arange(x.shape[1]) < counts[:, None]
    return x[keep].numpy()[:, None], counts.tolist()


def _hmmlearn_categorical(model: Any, pseudo_count: float, iters: int) -> Any:
    from hmmlearn import hmm

    K, V = model.config.num_states, model.config.vocab_size
    h = hmm.CategoricalHMM(
        n_components=K,
        n_features=V,
        n_iter=iters,
        tol=-math.inf,
        init_params="",
        startprob_prior=1.0,
        transmat_prior=1.0 + pseudo_count,
        emissionprob_prior=1.0 + pseudo_count,
        random_state=SEED,
    )
    h.startprob_ = model.log_initial.detach().double().softmax(-1).numpy()
    h.transmat_ = model.log_transition.detach().double().softmax(-1).numpy()
    h.emissionprob_ = model.log_emission.detach().double().softmax(-1).numpy()
    return h


def _hmmlearn_gaussian(model: Any, iters: int) -> Any:
    from hmmlearn import hmm

    h = hmm.GaussianHMM(
        n_components=model.config.num_states,
        covariance_type="diag",
        n_iter=iters,
        tol=-math.inf,
        init_params="",
        covars_prior=0.0,
        random_state=SEED,
    )
    h.startprob_ = model.log_initial.detach().double().softmax(-1).numpy()
    h.transmat_ = model.log_transition.detach().double().softmax(-1).numpy()
    h.means_ = model.means.detach().double().numpy()
    h.covars_ = (2 * model.log_scales.detach().double()).exp().numpy()
    return h


def _fit_hmmlearn(h: Any, X: np.ndarray, lengths: list[int]) -> tuple[float, float]:
    """hmmlearn's fit: (wall-clock, CPU) seconds."""
    import warnings

    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "model is not converging" on float noise
        h.fit(X, lengths)
    return time.perf_counter() - t0, time.process_time() - c0


def _fit_dgm(model: Any, x: torch.Tensor, iters: int) -> tuple[float, float]:
    """``iters`` fit_steps over x in batches of ``EM_BATCH``: (wall-clock, CPU) seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(iters):
        model.fit_step([(b, None) for b in x.split(EM_BATCH)])
    return time.perf_counter() - t0, time.process_time() - c0


@dataclasses.dataclass
class Fits:
    """One comparison's two fits from the same start: dgm's HMM, hmmlearn's with dgm's
    initial parameters, and the data each reads."""

    model: Any
    peer: Any
    x: torch.Tensor  # dgm's training sequences
    X: np.ndarray  # hmmlearn's: the same real tokens (or vectors), concatenated
    lengths: list[int]
    iterations: int

    def fresh(self) -> Fits:
        """The same fits on copies of both start points (a fit changes its model)."""
        return dataclasses.replace(
            self, model=copy.deepcopy(self.model), peer=copy.deepcopy(self.peer)
        )

    def fit_dgm(self) -> tuple[float, float]:
        """dgm's fit (``_fit_dgm``): (wall-clock, CPU) seconds."""
        return _fit_dgm(self.model, self.x, self.iterations)

    def fit_hmmlearn(self) -> tuple[float, float]:
        """hmmlearn's fit (``_fit_hmmlearn``): (wall-clock, CPU) seconds."""
        return _fit_hmmlearn(self.peer, self.X, self.lengths)


def words_fits(K: int, iterations: int, n: int) -> Fits:
    """dgm vs hmmlearn on ``n`` training words drawn at random by ``SEED`` (the split is in
    alphabetical order), ``K`` states, the same start."""
    full = DataConfig(name="words").load("train")
    pick = torch.randperm(len(full), generator=torch.Generator().manual_seed(SEED))[:n]
    x = full.x[pick.sort().values]
    model = dgm.create(
        "hmm", (16,), num_states=K, vocab_size=len(full.vocab), end_token=full.info.end_token
    )
    h = _hmmlearn_categorical(model, model.config.pseudo_count, iterations)  # the same start
    X, lengths = _real_sequences(x, model.token_counts(x))
    return Fits(model, h, x, X, lengths, iterations)


def toy_fits(K: int, iterations: int) -> Fits:
    """dgm vs hmmlearn on the ``hmm_gaussian`` training split, ``K`` states, the same start
    (dgm's initialisation from the data, which its first ``fit_step`` would make)."""
    train_data = DataConfig(name="hmm_gaussian").load("train")
    T = train_data.x.shape[1]
    model = dgm.create("hmm", tuple(train_data.x.shape[1:]), num_states=K)
    model.initialize(train_data.x)  # what the first fit_step does: the same start for both
    h = _hmmlearn_gaussian(model, iterations)
    X = train_data.x.double().reshape(-1, 2).numpy()
    return Fits(model, h, train_data.x, X, [T] * len(train_data), iterations)


def words_part(quick: bool) -> dict[str, Any]:
    """dgm vs hmmlearn on ``COMPARE_WORDS`` training words drawn at random (hmmlearn's fit
    loops over sequences in Python: about a minute per iteration on the whole split)."""
    K = QUICK_WORDS_K if quick else WORDS_K
    iters = QUICK_WORDS_ITERS if quick else WORDS_ITERS
    n = QUICK_COMPARE_WORDS if quick else COMPARE_WORDS
    fits = words_fits(K, iters, n)
    model, h, x = fits.model, fits.peer, fits.x
    test_data = DataConfig(name="words").load("test")
    dgm_wall, dgm_cpu = fits.fit_dgm()
    hl_wall, hl_cpu = fits.fit_hmmlearn()
    X, lengths = fits.X, fits.lengths
    counts_test = model.token_counts(test_data.x)
    Xt, lengths_t = _real_sequences(test_data.x, counts_test)
    with torch.no_grad():
        dgm_train = -model.log_prob(x).double().sum().item()
        dgm_test = -model.log_prob(test_data.x).double().sum().item()
    tokens_train, tokens_test = sum(lengths), int(counts_test.sum())
    out = {
        "data": "words",
        "num_states": K,
        "iterations": iters,
        "train_sequences": n,
        "test_sequences": len(test_data),
        "pseudo_count": model.config.pseudo_count,
        "dgm": {
            "fit_wall_s": dgm_wall,
            "fit_cpu_s": dgm_cpu,
            "train_nats_per_token": dgm_train / tokens_train,
            "test_nats_per_token": dgm_test / tokens_test,
        },
        "hmmlearn": {
            "fit_wall_s": hl_wall,
            "fit_cpu_s": hl_cpu,
            "train_nats_per_token": -h.score(X, lengths) / tokens_train,
            "test_nats_per_token": -h.score(Xt, lengths_t) / tokens_test,
        },
    }
    log(f"  words K={K}, {iters} iterations, {n} words: {out['dgm']} | {out['hmmlearn']}")
    return out


def hmm_words_run(quick: bool, root: Path) -> dict[str, Any]:
    """The HMM on the whole words train split, through dgm's trainer (EM steps)."""
    K = QUICK_WORDS_K if quick else RUN_K
    iters = QUICK_RUN_ITERS if quick else RUN_ITERS
    data = DataConfig(name="words")
    run = fresh_run_dir(root / "hmm_words")
    t0 = time.perf_counter()
    model, _ = train("hmm", data, run, _train_config(iters, EM_BATCH), progress=False, num_states=K)
    wall = time.perf_counter() - t0
    r = evaluate(model, data.load("test"), batch_size=EM_BATCH)
    log(f"  hmm K={K} on words: {iters} EM steps in {wall:.0f} s, {r['nats_per_token']:.3f}")
    return {
        "model": f"hmm (K={K}, EM)",
        "steps": iters,
        "batch_size": EM_BATCH,
        "train_wall_s": wall,
        "test_nats_per_token": r["nats_per_token"],
        "run_dir": str(run),
    }


def toy_part(quick: bool) -> dict[str, Any]:
    iters = QUICK_TOY_ITERS if quick else TOY_ITERS
    data = DataConfig(name="hmm_gaussian")
    train_data, test_data = data.load("train"), data.load("test")
    T = train_data.x.shape[1]
    fits = toy_fits(TOY_K, iters)
    model, h = fits.model, fits.peer
    dgm_wall, dgm_cpu = fits.fit_dgm()
    hl_wall, hl_cpu = fits.fit_hmmlearn()
    Xt = test_data.x.double().reshape(-1, 2).numpy()
    truth = dgm.create("hmm", tuple(train_data.x.shape[1:]), num_states=3).double()
    with torch.no_grad():
        truth.log_initial.copy_(torch.tensor(TRUE_HMM["initial"]).log())
        truth.log_transition.copy_(torch.tensor(TRUE_HMM["transition"]).log())
        truth.means.copy_(torch.tensor(TRUE_HMM["means"]))
        truth.log_scales.copy_(torch.tensor(TRUE_HMM["stds"]).log())
        true_nll = -truth.log_prob(test_data.x.double()).mean().item()
    dgm_test = evaluate(model, test_data, batch_size=EM_BATCH)
    out = {
        "data": "hmm_gaussian",
        "num_states": TOY_K,
        "iterations": iters,
        "train_sequences": len(train_data),
        "steps_per_sequence": T,
        "true_nats_per_step": true_nll / T,
        "dgm": {
            "fit_wall_s": dgm_wall,
            "fit_cpu_s": dgm_cpu,
            "test_nats_per_step": dgm_test["nll"] / T,
        },
        "hmmlearn": {
            "fit_wall_s": hl_wall,
            "fit_cpu_s": hl_cpu,
            "test_nats_per_step": -h.score(Xt, [T] * len(test_data)) / len(Xt),
        },
    }
    log(f"  toy: {json.dumps(out)}")
    return out


def lm_part(quick: bool, root: Path) -> list[dict[str, Any]]:
    steps = QUICK_LM_STEPS if quick else LM_STEPS
    data = DataConfig(name="words")
    test_data = data.load("test")
    rows = []
    for label, (name, config, lr) in LMS.items():
        run = fresh_run_dir(root / name)
        t0 = time.perf_counter()
        cfg = _train_config(steps, 64, lr)
        model, _ = train(name, data, run, cfg, progress=False, **config)
        wall = time.perf_counter() - t0
        r = evaluate(model, test_data, batch_size=512)
        rows.append(
            {
                "model": label,
                "steps": steps,
                "batch_size": 64,
                "train_wall_s": wall,
                "test_nats_per_token": r["nats_per_token"],
                "run_dir": str(run),
            }
        )
        log(f"  {label}: {steps} steps in {wall:.0f} s, {r['nats_per_token']:.3f} nats/char")
    return rows


def anomaly_part(run_dirs: dict[str, str], quick: bool, root: Path) -> list[dict[str, Any]]:
    """``dgm anomaly RUN --ood shuffled_words`` for each run, through the command line."""
    n = QUICK_OOD_N if quick else OOD_N
    rows = []
    for label, run in run_dirs.items():
        out = root / f"anomaly_{Path(run).name}.json"
        cmd = [sys.executable, "-m", "dgm", "anomaly", run, "--ood", "shuffled_words"]
        cmd += ["-n", str(n), "--train-n", str(n), "--json", str(out)]
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        record = json.loads(out.read_text())
        by = {r["method"]: r for r in record["rows"]}
        rows.append(
            {
                "model": label,
                "command": "dgm anomaly RUN --ood shuffled_words " + " ".join(cmd[-6:-2]),
                "n_in": record["n_in"],
                "n_out": record["n_out"],
                "mean_nll_in": record["mean_nll_in"],
                "mean_nll_out": record["mean_nll_out"],
                "auroc_likelihood": by["likelihood"]["auroc"],
                "auroc_typicality": by.get("typicality", {}).get("auroc"),
            }
        )
        log(f"  anomaly {label}: AUROC {rows[-1]['auroc_likelihood']:.3f}")
    return rows


PARTS = {"words": "rerun only the dgm vs hmmlearn comparison on words into the results file"}


def run(quick: bool = False, part: str | None = None) -> dict[str, Any]:
    torch.set_num_threads(1)
    root = runs_dir(NAME, quick)
    t0 = time.perf_counter()
    if part == "words":
        payload, wall = existing_payload(NAME, quick=quick)
        payload["words"] = words_part(quick)
        wall += time.perf_counter() - t0
        path = write_result(NAME, payload, quick=quick, seed=SEED, steps=None, wall_time_s=wall)
        log(f"wrote {path}")
        return payload
    words = words_part(quick)
    toy = toy_part(quick)
    lms = [hmm_words_run(quick, root), *lm_part(quick, root)]
    runs = {r["model"]: r["run_dir"] for r in lms}
    ood = anomaly_part(runs, quick, root)
    payload = {
        "description": (
            "HMM (dgm) vs hmmlearn: same K, same start, same Baum-Welch iterations; "
            "beside char_rnn and gpt (short budget) on words; real vs shuffled words"
        ),
        "threads": 1,
        "words": words,
        "toy": toy,
        "language_models": lms,
        "anomaly": ood,
    }
    path = write_result(
        NAME,
        payload,
        quick=quick,
        seed=SEED,
        steps=None,
        wall_time_s=time.perf_counter() - t0,
    )
    log(f"wrote {path}")
    return payload


def fits_of(row: dict[str, Any]) -> Fits:
    """The two fits of a saved comparison row, rebuilt from its own settings (states,
    iterations, training words) as ``words_part`` / ``toy_part`` built them."""
    if row["data"] == "words":
        return words_fits(row["num_states"], row["iterations"], row["train_sequences"])
    if row["data"] == "hmm_gaussian":
        return toy_fits(row["num_states"], row["iterations"])
    raise ValueError(f"no fits for data {row['data']!r}: expected 'words' or 'hmm_gaussian'")


def run_threads(quick: bool, threads: int) -> dict[str, Any]:
    """The ``--threads N`` pass (``benchmarks/alternate.py``): each saved comparison's two
    fits rebuilt from the same start (``fits_of``) and timed whole, by the wall clock, in
    ``SPEED_ROUNDS`` rounds after one warm-up round (each fit from a fresh copy of the
    start), alternating at ``threads`` threads for torch and numpy's BLAS, written into the
    row under "threads" (its 1-thread CPU times kept as they are)."""
    from benchmarks.alternate import speed_pass

    def steppers(_: dict[str, Any], row: dict[str, Any], __: int, ___: int) -> dict:
        fits = fits_of(row)
        return {
            "dgm": lambda _: fits.fresh().fit_dgm(),
            "hmmlearn": lambda _: fits.fresh().fit_hmmlearn(),
        }

    return speed_pass(
        sys.modules[__name__],
        steppers,
        quick=quick,
        threads=threads,
        rows=lambda payload: [payload[key] for key in ("words", "toy") if payload.get(key)],
        rounds=(QUICK_SPEED_ROUNDS if quick else SPEED_ROUNDS, 1),
    )


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines: dgm vs hmmlearn, the HMM beside the language models, outliers."""
    w, t = record["words"], record["toy"]
    lines = [
        "**Hidden Markov models** (hmm vs hmmlearn 0.3.3): "
        f"same K, same initial parameters, same Baum-Welch iterations, one thread; fit time "
        "in CPU seconds (dgm in float32, hmmlearn in float64). words: "
        f"{w['train_sequences']} random train words, "
        f"{w['test_sequences']} test words, nats per real token (letters + end token); "
        f"hmm_gaussian: {t['train_sequences']} sequences of {t['steps_per_sequence']} 2-D "
        f"vectors, test nats per step (the true HMM: {_f(t['true_nats_per_step'])}).",
        "",
        "| data | K | iterations | dgm test NLL | hmmlearn test NLL | dgm fit CPU s "
        "| hmmlearn fit CPU s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| words | {w['num_states']} | {w['iterations']} | "
        f"{_f(w['dgm']['test_nats_per_token'])} | {_f(w['hmmlearn']['test_nats_per_token'])} | "
        f"{_f(w['dgm']['fit_cpu_s'], 1)} | {_f(w['hmmlearn']['fit_cpu_s'], 1)} |",
        f"| hmm_gaussian | {t['num_states']} | {t['iterations']} | "
        f"{_f(t['dgm']['test_nats_per_step'])} | {_f(t['hmmlearn']['test_nats_per_step'])} | "
        f"{_f(t['dgm']['fit_cpu_s'], 1)} | {_f(t['hmmlearn']['fit_cpu_s'], 1)} |",
        *threads_line(
            [("words", w.get("threads")), ("hmm_gaussian", t.get("threads"))], unit="fit"
        ),
        "",
        "words, test split, nats per character (the language models after a short budget, "
        "not their best), and outlier detection of shuffled-letter words by "
        "`dgm anomaly RUN --ood shuffled_words` (AUROC, 0.5 = chance):",
        "",
        "| model | training | test nats/char | AUROC −log p | AUROC typicality |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    ood = {r["model"]: r for r in record.get("anomaly", [])}
    rows = [
        (r["model"], f"{r['steps']} steps, batch {r['batch_size']}", r["test_nats_per_token"])
        for r in record.get("language_models", [])
    ]
    for label, how, nll in rows:
        o = ood.get(label, {})
        lines.append(
            f"| {label} | {how} | {_f(nll)} | {_f(o.get('auroc_likelihood'))} | "
            f"{_f(o.get('auroc_typicality'))} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    from benchmarks import common

    return common.main(
        run,
        __doc__,
        "about 1 minute: fewer words, states and steps",
        argv,
        parts=PARTS,
        threads=run_threads,
    )


if __name__ == "__main__":
    raise SystemExit(main())


def peer_rows(record: dict[str, Any]) -> list[Any]:
    """docs/peers.md rows: the words and Gaussian-toy fits against hmmlearn."""
    from benchmarks.peers import PeerRow, speed_cell

    out = []
    for key, data, unit, nll in (
        ("words", "words (categorical emissions)", "nats/token", "test_nats_per_token"),
        ("toy", "hmm_gaussian (2-D Gaussian emissions)", "nats/step", "test_nats_per_step"),
    ):
        r = record.get(key)
        if not r:
            continue
        ours, theirs = r["dgm"][nll], r["hmmlearn"][nll]
        ratio = r["dgm"]["fit_cpu_s"] / r["hmmlearn"]["fit_cpu_s"]
        out.append(
            PeerRow(
                family="classical",
                model=f"hmm (K={r['num_states']})",
                peer="hmmlearn 0.3.3",
                data=data,
                budget=f"{r['iterations']} Baum–Welch iterations, same start",
                dgm=f"{ours:.4f} {unit}",
                peer_value=f"{theirs:.4f}",
                difference=f"{ours - theirs:+.1e}",
                speed=speed_cell(f"{ratio:.3f} (fit CPU s)", r.get("threads"), digits=3),
                reading="the same fit (dgm in float32, hmmlearn in float64), "
                f"{1 / ratio:.0f}× less CPU",
            )
        )
    return out
