"""Model-based control: MPC (CEM) with a learned dynamics model p(Δs | s, a) against a
random policy and MPC with the true simulator, on Pendulum-v1 and CartPole-v1.

Every model that takes a context vector is fitted by dgm's trainer to random-policy
``transitions`` (x = Δs, c = (s, a); CartPole's action one-hot), and the planner
(``dgm.tasks.control``: CEM over a horizon H, one sampled rollout per candidate, re-planning
every step) acts with it in the real environment. The reference is the same planner with
gymnasium's exact equations from the copied env state. "after k rounds" is the model-based
loop: act with the planner, add those transitions, refit, k times (``model_based_loop``).
Returns are the env's own (Pendulum: −(θ² + 0.1 θ̇² + 0.001 u²) per step over 200 steps;
CartPole: 1 per step up to 500); mean ± SE over episodes (initial states seeded). The
one-step test NLL (nats per transition, the ELBO's bound for the VAE) is on held-out
random-policy transitions.

CartPole's planner adds the margin (``dgm.tasks.control.envs``) that breaks ties between
plans surviving the whole horizon; each env's settings (episodes, training steps, rounds)
are in its record and in the table.

    python -m benchmarks.control [--quick] [--part Pendulum-v1|CartPole-v1]

``--part ENV``: only that environment, its rows replacing its rows in the results file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

import dgm
from benchmarks.common import (
    existing_payload,
    fmt,
    log,
    one_thread,
    result_path,
    train_config,
    write_result,
)
from dgm.data import get
from dgm.registry import config_for_data
from dgm.tasks import control

NAME = "control"
SEED = 0
MODELS = {  # label -> registry name and config (context_shape comes from the data)
    "gaussian_mlp": ("gaussian_mlp", {"hidden_sizes": (64, 64)}),
    "rnade": ("rnade", {"hidden_size": 64, "num_components": 5}),
    "realnvp": ("realnvp", {"num_couplings": 4, "hidden_sizes": (64, 64)}),
    "vae": ("vae", {"latent_dim": 2, "hidden_sizes": (64, 64), "decoder": "gaussian"}),
    "maf": ("maf", {"num_transforms": 3, "hidden_sizes": (64, 64)}),  # slowest sampler: last
}
LOOP_MODEL = "gaussian_mlp"  # the model run through the model-based loop's later rounds
ENVS = {  # env -> (train episodes, test episodes, planner options)
    "Pendulum-v1": (20, 5, {"horizon": 20, "candidates": 100, "elites": 10, "iterations": 3}),
    "CartPole-v1": (50, 20, {"horizon": 15, "candidates": 50, "elites": 5, "iterations": 2}),
}
FULL = {"episodes": 3, "steps": 1000, "rounds": 3, "max_steps": None}
QUICK = {"episodes": 1, "steps": 200, "rounds": 2, "max_steps": 30}
FULL_FOR: dict[str, dict[str, Any]] = {}  # env -> the full settings it overrides (CPU budget)


def run_env(env: str, s: dict[str, Any], save: Callable[[dict[str, Any]], Any]) -> None:
    """Every row of ``env``; ``save(record)`` after each, the record ``complete`` at the end."""
    train_episodes, test_episodes, planner = ENVS[env]
    options = control.PlannerOptions(**planner)
    train = get("transitions", "train", env=env, episodes=train_episodes, seed=SEED)
    test = get("transitions", "test", env=env, episodes=test_episodes, seed=SEED)
    rows: list[dict[str, Any]] = []
    record = {
        "settings": s,
        "train_transitions": len(train),
        "test_transitions": len(test),
        "planner": planner,
        "rows": rows,
        "complete": False,
    }
    for policy, label in (("random", "random policy"), ("true", "MPC, true simulator")):
        t0 = time.process_time()
        runs = control.run_episodes(env, policy, s["episodes"], SEED, options, s["max_steps"])
        rows.append(_row(label, control.returns_of(runs), time.process_time() - t0))
        log(f"{env} {label}: {fmt(rows[-1]['mean'], 1)} ± {fmt(rows[-1]['se'], 1)}")
        save(record)
    cfg = train_config(s["steps"], batch_size=256, lr=2e-3, seed=SEED, warmup_steps=50)
    for label, (name, overrides) in MODELS.items():
        torch.manual_seed(SEED)
        model = dgm.create(name, train.event_shape, **config_for_data(name, train, overrides))
        t0 = time.process_time()
        rounds = control.model_based_loop(
            model,
            env,
            train,
            cfg,
            options,
            rounds=s["rounds"] if label == LOOP_MODEL else 1,
            episodes=s["episodes"],
            seed=SEED,
            max_steps=s["max_steps"],
            test=test,
        )
        cpu = time.process_time() - t0
        for r in rounds:
            k = r["round"]
            what = f"MPC, learned, after {k} round{'s' * (k > 1)}" if k else "MPC, learned"
            row = _row(f"{what}: {label}", r["returns"], cpu / len(rounds))
            rows.append(
                {
                    **row,
                    "model": label,
                    "round": r["round"],
                    "test_nll": r["test_nll"],
                    "transitions": r["transitions"],
                }
            )
            log(
                f"{env} {row['policy']}: {fmt(row['mean'], 1)} ± {fmt(row['se'], 1)}, "
                f"NLL {fmt(r['test_nll'])}"
            )
        save(record)
    record["complete"] = True
    save(record)


def _row(label: str, returns: list[float], cpu: float) -> dict[str, Any]:
    mean, se = control.mean_se(returns)
    return {"policy": label, "returns": returns, "mean": mean, "se": se, "cpu_s": round(cpu, 1)}


def run(quick: bool = False, part: str | None = None) -> None:
    """Both environments, or with ``part`` one, whose rows replace its rows in the results
    file; the file is rewritten after each row (``partial`` while a row is missing), so a
    long run leaves what it finished."""
    t0 = time.perf_counter()
    payload: dict[str, Any] = {"envs": {}}
    wall0 = 0.0
    if part is not None:
        payload, wall0 = existing_payload(NAME, quick=quick)
        for e in payload["envs"].values():  # records written before settings were per env
            e.setdefault("settings", payload["settings"])
    payload["settings"] = QUICK if quick else FULL
    payload["models"] = {k: {"name": n, **c} for k, (n, c) in MODELS.items()}
    with one_thread():
        for env in ENVS:
            if part not in (None, env):
                continue
            s = QUICK if quick else {**FULL, **FULL_FOR.get(env, {})}

            def save(record: dict[str, Any], env: str = env) -> None:
                payload["envs"][env] = record
                done = [e for e, r in payload["envs"].items() if r.get("complete", True)]
                payload["partial"] = set(done) != set(ENVS)
                write_result(
                    NAME,
                    payload,
                    quick=quick,
                    seed=SEED,
                    steps=payload["settings"]["steps"],
                    wall_time_s=wall0 + time.perf_counter() - t0,
                )

            run_env(env, s, save)
            log(f"wrote {result_path(NAME, quick=quick)}")


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines: one table of returns and one-step NLLs, both environments."""
    s = record["settings"]
    envs = record["envs"].items()
    lines = [
        "**Model-based control** (`dgm control`, `dgm.tasks.control`): MPC by the cross-entropy "
        "method over sampled rollouts of each learned dynamics model p(Δs | s, a), fitted by "
        "dgm's trainer to random-policy `transitions`, against a random policy and the same "
        "planner on the true simulator (copied env state). Return: mean ± SE over the episodes "
        "each env's settings row gives (Pendulum-v1: 200 steps, higher is better, about −150 "
        "is solved; CartPole-v1: up to 500, its planner breaking ties between plans that "
        'survive the horizon by the distance to the bounds). "after k rounds": the '
        "model-based loop (act, add the transitions, refit) run k more times. One-step test "
        "NLL in nats per transition (VAE: its bound). CPU s: fitting and acting, one thread."
        + (" Partial run: the rows below are those that finished." * bool(record.get("partial"))),
        "",
        "| env | policy | return | one-step test NLL | transitions fitted | CPU s |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for env, e in envs:
        planner, es = e["planner"], e.get("settings", s)
        for row in e["rows"]:
            nll = fmt(row["test_nll"]) if "test_nll" in row else ""
            lines.append(
                f"| {env} | {row['policy']} | {fmt(row['mean'], 1)} ± {fmt(row['se'], 1)} | "
                f"{nll} | {row.get('transitions', '')} | {fmt(row['cpu_s'], 1)} |"
            )
        lines.append(
            f"| {env} | (planner: H = {planner['horizon']}, {planner['candidates']} candidates, "
            f"{planner['elites']} elites, {planner['iterations']} iterations, "
            f"{planner.get('particles', 1)} particle{'s' * (planner.get('particles', 1) > 1)}) "
            "| | | | |"
        )
        lines.append(
            f"| {env} | (settings: {es['episodes']} episodes per row, models fitted for "
            f"{es['steps']} steps, {es['rounds'] - 1} later rounds) | | | | |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    from benchmarks import common

    parts = {env: f"only {env}, its rows replacing the ones in the results file" for env in ENVS}
    quick = "about 1 minute: 1 short episode per row, 200 steps"
    return common.main(run, __doc__, quick, argv, parts)


if __name__ == "__main__":
    raise SystemExit(main())
