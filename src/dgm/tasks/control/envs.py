"""What the planner knows of an environment: its reward, its termination and, for the
reference planner, its exact equations of motion as batched torch code.

Rewards are functions of (s, a, s′) on observations, so a planner can score imagined steps:
- ``Pendulum-v1``: gymnasium's own reward, a function of (s, a): −(θ² + 0.1 θ̇² + 0.001 u²)
  with θ = atan2(sin θ, cos θ) ∈ (−π, π] read off the observation and u clipped to [−2, 2].
- ``CartPole-v1``: 1 for each step whose new state is inside gymnasium's termination bounds
  (|x| ≤ 2.4, |θ| ≤ 12°), and nothing from the first step outside them on: the episode's
  length, the quantity gymnasium's reward of 1 per step sums to. Its ``margin``
  1 − ((x / 2.4)² + (θ / 12°)²) / 2 (1 upright at the centre, ≥ 0 inside the bounds)
  breaks the planner's ties between plans that survive the whole horizon
  (``dgm.tasks.control.planner``): without it every such plan scores H, the planner acts at
  random until a bound is less than H steps away, and the cart drifts out of its track even
  under the true simulator.
The true dynamics (``Problem.true_step``) are gymnasium's equations (Pendulum: g = 10,
dt = 0.05, |θ̇| ≤ 8; CartPole: explicit Euler, τ = 0.02) on a batch of states; MPC with them,
started from the environment's copied state (``Problem.state_of``), is the upper reference.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

Step = Callable[[Tensor, Tensor], Tensor]  # (s (N, S), encoded a (N, A)) -> s′ (N, S)


@dataclasses.dataclass(frozen=True)
class Problem:
    """A control problem in observation space: states (N, S), encoded actions (N, A) (the
    value of a continuous action, one-hot for a discrete one)."""

    env_id: str
    state_dim: int  # S, entries of an observation
    action_dim: int  # A, entries of an encoded action
    num_actions: int  # > 0: a discrete action space of this many actions (A = num_actions)
    action_low: tuple[float, ...]  # continuous actions: lower bound of each entry
    action_high: tuple[float, ...]  # continuous actions: upper bound of each entry
    reward: Callable[[Tensor, Tensor, Tensor], Tensor]  # r(s, a, s′) -> (N,)
    terminal: Callable[[Tensor], Tensor] | None = None  # s′ -> (N,) bool: the episode ends
    true_step: Step | None = None  # the exact dynamics, batched (the reference planner's)
    state_of: Callable[[Any], Tensor] | None = None  # env -> its state as an observation (S,)
    margin: Callable[[Tensor], Tensor] | None = None  # s′ -> (N,) in [0, 1]: breaks plan ties

    def env_action(self, a: Tensor) -> Any:
        """An encoded action (A,) as the environment takes it."""
        if self.num_actions:
            return int(a.argmax())
        return a.detach().cpu().numpy().astype("float32")


# -- Pendulum-v1 --------------------------------------------------------------------------------

PENDULUM_G, PENDULUM_DT, PENDULUM_MAX_SPEED, PENDULUM_MAX_TORQUE = 10.0, 0.05, 8.0, 2.0


def pendulum_reward(s: Tensor, a: Tensor, s_next: Tensor) -> Tensor:
    """gymnasium's Pendulum reward of state s = (cos θ, sin θ, θ̇) and torque a: (N,)."""
    theta = torch.atan2(s[:, 1], s[:, 0])  # (N,) normalised to (−π, π]
    u = a[:, 0].clamp(-PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)  # (N,)
    return -(theta.square() + 0.1 * s[:, 2].square() + 0.001 * u.square())


def pendulum_step(s: Tensor, a: Tensor) -> Tensor:
    """gymnasium's Pendulum equations (m = l = 1) on observations (N, 3): s′ (N, 3)."""
    theta = torch.atan2(s[:, 1], s[:, 0])  # (N,)
    u = a[:, 0].clamp(-PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)  # (N,)
    acc = 3 * PENDULUM_G / 2 * torch.sin(theta) + 3.0 * u  # (N,)
    speed = (s[:, 2] + acc * PENDULUM_DT).clamp(-PENDULUM_MAX_SPEED, PENDULUM_MAX_SPEED)
    theta = theta + speed * PENDULUM_DT
    return torch.stack([torch.cos(theta), torch.sin(theta), speed], dim=1)


def pendulum_state(env: Any) -> Tensor:
    """The Pendulum's copied state (θ, θ̇) as an observation (cos θ, sin θ, θ̇), float64."""
    theta, speed = (float(v) for v in env.unwrapped.state)
    return torch.tensor([math.cos(theta), math.sin(theta), speed], dtype=torch.float64)


# -- CartPole-v1 --------------------------------------------------------------------------------

CART_G, CART_FORCE, CART_TAU = 9.8, 10.0, 0.02  # gravity (m/s²), push (N), time step (s)
CART_MASS, POLE_MASS, POLE_HALF_LENGTH = 1.0, 0.1, 0.5  # kg, kg, m
CART_X_LIMIT, POLE_ANGLE_LIMIT = 2.4, 12 * 2 * math.pi / 360


def cartpole_terminal(s: Tensor) -> Tensor:
    """gymnasium's CartPole termination of states (N, 4): |x| > 2.4 or |θ| > 12°, (N,) bool."""
    return (s[:, 0].abs() > CART_X_LIMIT) | (s[:, 2].abs() > POLE_ANGLE_LIMIT)


def cartpole_margin(s: Tensor) -> Tensor:
    """How far states (N, 4) are inside the termination bounds: 1 − ((x / 2.4)² + (θ / 12°)²)
    / 2, 1 upright at the centre, in [0, 1] inside the bounds: (N,)."""
    x, theta = s[:, 0] / CART_X_LIMIT, s[:, 2] / POLE_ANGLE_LIMIT  # (N,) each, ±1 on a bound
    return 1 - (x.square() + theta.square()) / 2


def cartpole_reward(s: Tensor, a: Tensor, s_next: Tensor) -> Tensor:
    """1 where the new state is inside the termination bounds, else 0: (N,)."""
    return (~cartpole_terminal(s_next)).to(s.dtype)


def cartpole_step(s: Tensor, a: Tensor) -> Tensor:
    """gymnasium's CartPole equations (explicit Euler) on states (N, 4) and one-hot pushes
    (N, 2) (entry 1: push right): s′ (N, 4)."""
    x, x_dot, theta, theta_dot = s.unbind(1)  # (N,) each
    force = torch.where(a[:, 1] > 0.5, CART_FORCE, -CART_FORCE)  # (N,)
    total = CART_MASS + POLE_MASS
    pml = POLE_MASS * POLE_HALF_LENGTH
    cos, sin = torch.cos(theta), torch.sin(theta)
    temp = (force + pml * theta_dot.square() * sin) / total
    theta_acc = (CART_G * sin - cos * temp) / (
        POLE_HALF_LENGTH * (4.0 / 3.0 - POLE_MASS * cos.square() / total)
    )
    x_acc = temp - pml * theta_acc * cos / total
    return torch.stack(
        [
            x + CART_TAU * x_dot,
            x_dot + CART_TAU * x_acc,
            theta + CART_TAU * theta_dot,
            theta_dot + CART_TAU * theta_acc,
        ],
        dim=1,
    )


def cartpole_state(env: Any) -> Tensor:
    """The CartPole's copied state (x, ẋ, θ, θ̇), float64 (the observation is the state)."""
    return torch.as_tensor(env.unwrapped.state, dtype=torch.float64).clone()


PROBLEMS = {
    "Pendulum-v1": Problem(
        "Pendulum-v1",
        state_dim=3,
        action_dim=1,
        num_actions=0,
        action_low=(-PENDULUM_MAX_TORQUE,),
        action_high=(PENDULUM_MAX_TORQUE,),
        reward=pendulum_reward,
        true_step=pendulum_step,
        state_of=pendulum_state,
    ),
    "CartPole-v1": Problem(
        "CartPole-v1",
        state_dim=4,
        action_dim=2,
        num_actions=2,
        action_low=(),
        action_high=(),
        reward=cartpole_reward,
        terminal=cartpole_terminal,
        true_step=cartpole_step,
        state_of=cartpole_state,
        margin=cartpole_margin,
    ),
}


def problem(env_id: str) -> Problem:
    """The control problem of ``env_id`` (``PROBLEMS``: the envs with a known reward)."""
    try:
        return PROBLEMS[env_id]
    except KeyError:
        raise ValueError(
            f"unknown env {env_id!r} for control: pass --env {' or --env '.join(PROBLEMS)} "
            "(the environments whose reward the planner knows)"
        ) from None
