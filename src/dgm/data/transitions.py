"""Transitions of gymnasium classic-control environments, for learning dynamics models.

``transitions``: ``episodes`` episodes per split of environment ``env`` under a uniformly
random policy (the action space's own sampler), seeded by ``seed`` and the split. Each
example is one step s -> s′ under action a: x = Δs = s′ − s (the observation's change) and
the context c = (s, a), the observation followed by the action: the action itself for a
continuous (Box) action, its **one-hot** code for a discrete one (CartPole's push left or
right: 2 entries). A model of x given c is a one-step dynamics model p(s′ − s | s, a); the
planner of ``dgm.tasks.control`` rolls it out. Steps that end an episode by termination
(CartPole falling) are kept; the time-limit cut adds no step.

Only the classic-control environments (no MuJoCo, no rendering: pygame is not needed) are
offered: ``CLASSIC_CONTROL``.

Example:
    >>> from dgm.data import get
    >>> data = get("transitions", "test", env="Pendulum-v1", episodes=1)
    >>> data.x.shape, data.context_shape  # 200 steps of Δ(cos θ, sin θ, θ̇); c = (s, torque)
    (torch.Size([200, 3]), (4,))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dgm.data.dataset import TensorData, register_dataset
from dgm.data.images import split_seed
from dgm.data.options import TransitionOptions

CLASSIC_CONTROL = (
    "Acrobot-v1",
    "CartPole-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
    "Pendulum-v1",
)

Policy = Callable[[np.ndarray], Any]  # observation -> an action of the env's action space


def make_env(env_id: str, max_steps: int | None = None) -> Any:
    """The gymnasium environment ``env_id`` (one of ``CLASSIC_CONTROL``), headless; episodes
    cut after ``max_steps`` steps (none: the env's own limit, Pendulum 200, CartPole 500)."""
    if env_id not in CLASSIC_CONTROL:
        raise ValueError(
            f"unknown env {env_id!r}: pass --env with a classic-control environment, one of "
            f"{', '.join(CLASSIC_CONTROL)}"
        )
    import gymnasium

    return gymnasium.make(env_id, **({} if max_steps is None else {"max_episode_steps": max_steps}))


def action_width(space: Any) -> int:
    """Entries of an encoded action: n for a discrete space of n actions (one-hot), the
    action's size for a Box."""
    n = getattr(space, "n", None)
    return int(n) if n is not None else int(np.prod(space.shape))


def encode_actions(space: Any, actions: Tensor) -> Tensor:
    """Actions (N,) of a discrete space as one-hot floats (N, n); Box actions (N, *shape)
    flattened to floats (N, size)."""
    n = getattr(space, "n", None)
    if n is not None:
        return torch.nn.functional.one_hot(actions.long().view(-1), int(n)).double()  # (N, n)
    return actions.reshape(len(actions), -1).double()  # (N, A)


def run_episode(env: Any, policy: Policy, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """One episode from ``env.reset(seed=seed)`` to termination or the time limit:
    observations (T + 1, S), actions (T, *action shape) and the env's rewards (T,)."""
    obs, _ = env.reset(seed=seed)
    states, actions, rewards = [obs], [], []
    done = False
    while not done:
        a = policy(obs)
        obs, r, terminated, truncated, _ = env.step(a)
        states.append(obs)
        actions.append(np.asarray(a))
        rewards.append(float(r))
        done = terminated or truncated
    return (
        torch.as_tensor(np.stack(states), dtype=torch.float64),
        torch.as_tensor(np.stack(actions)),
        torch.as_tensor(rewards, dtype=torch.float64),
    )


def random_policy(env: Any, seed: int) -> Policy:
    """Uniformly random actions from ``env.action_space``, seeded."""
    env.action_space.seed(seed)
    return lambda _obs: env.action_space.sample()


def transition_pairs(
    space: Any, episodes: list[tuple[Tensor, Tensor, Tensor]]
) -> tuple[Tensor, Tensor]:
    """x = Δs (N, S) and c = (s, encoded a) (N, S + A) of every step of ``episodes``."""
    xs, cs = [], []
    for states, actions, _ in episodes:
        xs.append(states[1:] - states[:-1])  # (T, S)
        cs.append(torch.cat([states[:-1], encode_actions(space, actions)], dim=1))  # (T, S + A)
    return torch.cat(xs), torch.cat(cs)


def transitions_data(
    space: Any, episodes: list[tuple[Tensor, Tensor, Tensor]], name: str = "transitions"
) -> TensorData:
    """``episodes`` as a float32 TensorData: x = Δs, context c = (s, a)."""
    x, c = transition_pairs(space, episodes)
    return TensorData(x.float(), name=name, context=c.float())


@register_dataset(
    "transitions", "control: Δs = s′ − s given c = (s, a), random-policy steps", TransitionOptions
)
def load_transitions(split: str, root: str | None, options: TransitionOptions) -> TensorData:
    """``episodes`` random-policy episodes of gymnasium's ``env`` (see the module)."""
    env, episodes, seed = options.env, options.episodes, options.seed
    environment = make_env(env)
    base = split_seed("transitions", split, seed) % 2**31
    policy = random_policy(environment, base)
    runs = [run_episode(environment, policy, base + i) for i in range(episodes)]
    environment.close()
    return transitions_data(environment.action_space, runs)
