"""Model-based control with a learned dynamics model p(Δs | s, a).

A context-conditional model trained on ``transitions`` (x = Δs = s′ − s, c = (s, a)) is a
simulator: s′ = s + a draw of x given c. ``Planner`` (MPC by the cross-entropy method or
random shooting, ``dgm.tasks.control.planner``) rolls out sampled trajectories of it and
re-plans every step; ``run_episodes`` runs a policy in the real gymnasium environment;
``model_based_loop`` is the classic model-based RL loop (act with the planner, add the
transitions to the data, refit the model, again); ``control`` is what ``dgm control RUN``
does. The reference is MPC with the exact equations from the environment's copied state
(``run_episodes(env, "true", ...)``). Rewards and termination: ``dgm.tasks.control.envs``.
The planner's tensors and rollouts live on the dynamics model's device (``control`` reads
it off the model); the gymnasium environment steps on the CPU.

Example:
    >>> import torch
    >>> from dgm.tasks.control import PlannerOptions, Planner, problem
    >>> pendulum = problem("Pendulum-v1")
    >>> planner = Planner(pendulum, pendulum.true_step, PlannerOptions(horizon=5, candidates=20,
    ...     elites=4, iterations=2), torch.Generator().manual_seed(0))
    >>> planner.act(torch.tensor([1.0, 0.0, 0.0])).shape
    torch.Size([1])
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dgm.data.dataset import TensorData
from dgm.data.transitions import make_env, random_policy, run_episode, transitions_data
from dgm.evaluate.likelihood import evaluate
from dgm.model import GenerativeModel
from dgm.tasks.control.envs import PROBLEMS, Problem, Step, problem
from dgm.tasks.control.planner import Planner, PlannerOptions, plan_returns, rollout
from dgm.train.config import TrainConfig

Episode = tuple[Tensor, Tensor, Tensor]  # observations (T + 1, S), actions (T, ...), rewards (T,)


@dataclasses.dataclass
class ControlOptions(PlannerOptions):
    env: str | None = None  # gymnasium environment; none: the one the run was trained on
    episodes: int = 10  # episodes run in the real environment (mean ± SE of their returns)
    seed: int = 0  # seeds the episodes' initial states and the planner's draws
    temperature: float = 1.0  # the model's sampling temperature in the rollouts

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {self.episodes}")


def model_step(model: GenerativeModel, prob: Problem, **sample_options: Any) -> Step:
    """The dynamics of a model of Δs given c = (s, a): s′ = s + a draw of x ~ p(x | c).
    Refuses a model without a context or whose x or c do not fit the problem's sizes."""
    check_dynamics_model(model, prob)

    def step(s: Tensor, a: Tensor, generator: torch.Generator | None = None) -> Tensor:
        c = torch.cat([s, a], dim=1).to(model.device, model.dtype)  # (N, S + A)
        delta = model.sample(len(s), c, generator=generator, **sample_options)  # (N, S)
        return s + delta.to(s.dtype).view(len(s), -1)

    return step


def check_dynamics_model(model: GenerativeModel, prob: Problem) -> None:
    """Refuse a model that cannot be a dynamics model of ``prob``, naming the fix."""
    cond, name = model.conditioning, type(model).__name__
    S, A = prob.state_dim, prob.action_dim
    fix = (
        f"train one on the env's transitions, e.g. dgm train gaussian_mlp --data transitions "
        f"--env {prob.env_id} --out RUN"
    )
    if cond.kind != "context" or cond.context_vocab:
        raise ValueError(
            f"{name} takes no context vector c = (s, a), so it is no dynamics model: {fix}"
        )
    if math.prod(cond.context_shape) != S + A or math.prod(model.event_shape) != S:
        raise ValueError(
            f"{name} models x of shape {tuple(model.event_shape)} given a context of shape "
            f"{tuple(cond.context_shape)}, but {prob.env_id} has Δs of {S} and c = (s, a) of "
            f"{S + A} entries: pass the --env it was trained on, or {fix}"
        )


def with_generator(step: Step, generator: torch.Generator | None) -> Step:
    """``step`` with its draws taken from ``generator`` (a model's step takes one)."""
    return lambda s, a: step(s, a, generator)  # type: ignore[call-arg]


def planner_policy(
    prob: Problem,
    step: Step,
    options: PlannerOptions,
    seed: int,
    env: Any = None,
    device: str | torch.device = "cpu",
) -> Callable[[np.ndarray], Any]:
    """A policy acting by MPC over ``step``, planning on ``device`` with a generator there;
    with ``env`` it plans from the env's copied state (``prob.state_of``) instead of the
    observation."""
    g = torch.Generator(device=device).manual_seed(seed)
    planner = Planner(prob, with_generator(step, g), options, g, device=device)

    def act(obs: np.ndarray) -> Any:
        s = prob.state_of(env) if env is not None and prob.state_of else torch.as_tensor(obs)
        return prob.env_action(planner.act(s.double()))

    act.reset = planner.reset  # type: ignore[attr-defined]
    return act


def run_episodes(
    env_id: str,
    policy: str | Callable[..., Any],
    episodes: int,
    seed: int,
    options: PlannerOptions,
    max_steps: int | None = None,
    device: str | torch.device = "cpu",
) -> list[Episode]:
    """``episodes`` episodes of the real environment (``env.reset(seed=seed + i)``) under
    ``policy``: "random", "true" (MPC with the exact equations from the copied state), or a
    dynamics step s′ = f(s, a, generator) to plan with (``model_step``), the planner's
    rollouts on ``device`` (the model's); each cut after ``max_steps`` steps (none: the
    env's own limit)."""
    prob, env = problem(env_id), make_env(env_id, max_steps)
    if policy == "random":
        act = random_policy(env, seed)
    elif policy == "true":
        true_step = lambda s, a, _g=None: prob.true_step(s, a)  # noqa: E731
        act = planner_policy(prob, true_step, options, seed, env, device)
    else:
        act = planner_policy(prob, policy, options, seed, device=device)  # type: ignore[arg-type]
    out = []
    for i in range(episodes):
        if hasattr(act, "reset"):
            act.reset()
        out.append(run_episode(env, act, seed + i))
    env.close()
    return out


def returns_of(episodes: list[Episode]) -> list[float]:
    """The return (sum of the env's rewards) of each episode."""
    return [float(rewards.sum()) for _, _, rewards in episodes]


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample SD / √n; 0 for one value)."""
    v = np.asarray(values, dtype=float)
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
    return float(v.mean()), se


def fit(model: GenerativeModel, data: TensorData, config: TrainConfig) -> GenerativeModel:
    """Train ``model`` on ``data`` in memory with dgm's trainer (nothing written)."""
    from dgm.train.trainer import Trainer

    Trainer(model, data, None, config, run_dir=None, progress=False).fit()
    return model.eval()


def one_step_nll(model: GenerativeModel, data: TensorData) -> float:
    """Mean −log p(Δs | s, a) of ``data`` in nats per transition (the bound for a VAE)."""
    return float(evaluate(model, data)["nll"])


def model_based_loop(
    model: GenerativeModel,
    env_id: str,
    data: TensorData,
    train: TrainConfig,
    options: PlannerOptions,
    *,
    rounds: int = 3,
    episodes: int = 3,
    seed: int = 0,
    max_steps: int | None = None,
    test: TensorData | None = None,
    **sample_options: Any,
) -> list[dict[str, Any]]:
    """The model-based RL loop: fit ``model`` to ``data``, run ``episodes`` MPC episodes
    with it in the real env, add their transitions to the data, refit (continuing from the
    weights), ``rounds`` times. One record per round: its returns and the data size it was
    fitted on (round 0: the given data only), and with ``test`` data its one-step test NLL
    (nats per transition) after that round's fit."""
    prob = problem(env_id)
    space = make_env(env_id).action_space
    records = []
    for r in range(rounds):
        fit(model, data, train)
        step = model_step(model, prob, **sample_options)
        runs = run_episodes(
            env_id, step, episodes, seed + 1000 * r, options, max_steps, model.device
        )
        record = {"round": r, "transitions": len(data), "returns": returns_of(runs)}
        if test is not None:
            record["test_nll"] = one_step_nll(model, test)
        records.append(record)
        new = transitions_data(space, runs)
        context = torch.cat([data.context, new.context])  # type: ignore[list-item]
        data = TensorData(torch.cat([data.x, new.x]), name=data.name, context=context)
    return records


def control(model: GenerativeModel, options: ControlOptions) -> list[float]:
    """Returns of ``options.episodes`` MPC episodes in ``options.env`` planned with
    ``model``'s sampled rollouts on the model's device: what ``dgm control RUN`` reports."""
    if options.env is None:
        raise ValueError("name the environment: --env Pendulum-v1 (or CartPole-v1)")
    prob = problem(options.env)
    step = model_step(model, prob, temperature=options.temperature)
    planner = PlannerOptions(
        **{f.name: getattr(options, f.name) for f in dataclasses.fields(PlannerOptions)}
    )
    runs = run_episodes(
        options.env, step, options.episodes, options.seed, planner, device=model.device
    )
    return returns_of(runs)


def plot_returns(returns: list[float], path: Path, title: str) -> None:
    """Return per episode with the mean as a line, written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(range(1, len(returns) + 1), returns, "o-", label="episode")
    ax.axhline(float(np.mean(returns)), color="k", ls="--", label="mean")
    ax.set_xlabel("episode")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


__all__ = [
    "PROBLEMS",
    "ControlOptions",
    "Planner",
    "PlannerOptions",
    "Problem",
    "check_dynamics_model",
    "control",
    "fit",
    "mean_se",
    "model_based_loop",
    "model_step",
    "one_step_nll",
    "plan_returns",
    "plot_returns",
    "problem",
    "rollout",
    "run_episodes",
]
