"""Model-predictive control by sampling: the cross-entropy method and random shooting.

At every step the planner scores candidate action sequences a_0..a_{H−1} by rolling out
**sampled** trajectories s_{t+1} = s_t + Δs_t, Δs_t ~ p(Δs | s_t, a_t) of a dynamics model
(or the exact equations) from the current state, sums the rewards r(s_t, a_t, s_{t+1})
(none after a terminal state), and executes the first action of the best plan; it re-plans
at the next step (receding horizon). With ``particles`` P > 1 a plan's score is the mean
return of P independently sampled rollouts of it (PETS's trajectory sampling, TS-∞: each
particle draws its own Δs at every step), whose variance is 1/P of one rollout's.

A problem with a ``margin`` (CartPole: how far inside the termination bounds) adds it to
the score, scaled so that the whole horizon's sum stays below one step's reward: plans that
survive equally long, which all tie under an alive-reward, are then ranked by how far from
the bounds they stay, so the planner sees a drift towards the edge before the horizon
reaches it.

- CEM: a diagonal Gaussian over continuous sequences (clipped to the action bounds), or
  per-step categorical probabilities over discrete ones, refitted ``iterations`` times to
  the ``elites`` best of ``candidates`` sequences; it acts the first step's mean (discrete:
  its most probable action; every action keeps a ``FLOOR`` of probability) and warm-starts
  the next step from the plan shifted by one.
- Random shooting: ``candidates`` × ``iterations`` uniform sequences at once (the same
  number of rollouts as CEM), the first action of the best one.

References:
    Rubinstein 1999, The cross-entropy method for combinatorial and continuous
    optimization, Methodology and Computing in Applied Probability 1(2).
    Nagabandi, Kahn, Fearing & Levine 2018, Neural network dynamics for model-based deep
    reinforcement learning with model-free fine-tuning, ICRA, arXiv:1708.02596.
    Chua, Calandra, McAllister & Levine 2018 (PETS), NeurIPS, arXiv:1805.12114.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor

from dgm.tasks.control.envs import Problem, Step

FLOOR = 0.05  # discrete CEM: each action keeps this share of uniform probability at every step


@dataclasses.dataclass
class PlannerOptions:
    method: Literal["cem", "random"] = "cem"  # cem: cross-entropy method; random: random shooting
    horizon: int = 30  # H, steps each candidate plan looks ahead (Pendulum: 1.5 s)
    candidates: int = 200  # action sequences rolled out per CEM iteration
    elites: int = 20  # best sequences the CEM refits its distribution to (a tenth)
    iterations: int = 4  # CEM refits per step; random shooting draws candidates × this at once
    particles: int = 1  # P, sampled rollouts per plan, scored by their mean return (PETS)

    def __post_init__(self) -> None:
        for name in ("horizon", "candidates", "elites", "iterations", "particles"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.elites > self.candidates:
            raise ValueError(
                f"--elites ({self.elites}) must be at most --candidates ({self.candidates})"
            )


def rollout(step: Step, s0: Tensor, actions: Tensor) -> Tensor:
    """States (N, H + 1, S) of plans ``actions`` (N, H, A) from states s0 (N, S) or (S,):
    s_{t+1} = step(s_t, a_t), a sampled next state for a model's step."""
    s = s0.expand(len(actions), -1) if s0.dim() == 1 else s0  # (N, S)
    states = [s]
    for t in range(actions.shape[1]):
        s = step(s, actions[:, t])  # (N, S)
        states.append(s)
    return torch.stack(states, dim=1)  # (N, H + 1, S)


def plan_returns(
    problem: Problem,
    step: Step,
    s0: Tensor,
    actions: Tensor,
    particles: int = 1,
    margin: bool = False,
) -> Tensor:
    """Σ_t r(s_t, a_t, s_{t+1}) of each plan (N, H, A) from s0, averaged over ``particles``
    independently sampled rollouts of it: (N,); no reward after the first terminal state.
    With ``margin`` and a problem that has one, each step alive adds
    margin(s_{t+1}) / (H + 1) ∈ [0, 1 / (H + 1)] (below one step's reward over the horizon)."""
    N, H = actions.shape[:2]
    plans = actions.repeat_interleave(particles, dim=0)  # (N P, H, A), a plan's particles together
    states = rollout(step, s0, plans)  # (N P, H + 1, S)
    total = torch.zeros(len(plans), dtype=states.dtype, device=states.device)  # (N P,)
    alive = torch.ones_like(total)  # (N P,)
    bonus = problem.margin if margin else None
    for t in range(H):
        s_next = states[:, t + 1]  # (N P, S)
        total = total + alive * problem.reward(states[:, t], plans[:, t], s_next)
        if problem.terminal is not None:
            alive = alive * (~problem.terminal(s_next)).to(alive.dtype)
        if bonus is not None:
            total = total + alive * bonus(s_next) / (H + 1)
    return total.view(N, particles).mean(1)  # (N,)


class Planner:
    """MPC with CEM or random shooting over ``step`` (see the module); ``act(s)`` gives the
    encoded action (A,) to execute in state s (S,). ``reset()`` forgets the warm start.
    Plans, rollouts and scores live on ``device`` (the dynamics model's; ``generator``, if
    given, must be on it too) in ``dtype``."""

    def __init__(
        self,
        problem: Problem,
        step: Step,
        options: PlannerOptions,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ) -> None:
        self.problem, self.step, self.options = problem, step, options
        self.generator = generator
        self.like = {"dtype": dtype, "device": torch.device(device)}  # of every planner tensor
        if not problem.num_actions:
            self.low = torch.tensor(problem.action_low, **self.like)  # (A,)
            self.high = torch.tensor(problem.action_high, **self.like)  # (A,)
        self.reset()

    def reset(self) -> None:
        """Start the next plan from the uninformed distribution."""
        H, A = self.options.horizon, self.problem.action_dim
        if self.problem.num_actions:
            self.probs = torch.full((H, A), 1.0 / A, **self.like)  # (H, n)
        else:
            self.mean = ((self.low + self.high) / 2).expand(H, A).clone()  # (H, A)

    def _draw(self, n: int, uniform: bool) -> Tensor:
        """n plans (n, H, A): from the CEM's distribution, or uniform."""
        H, A, g = self.options.horizon, self.problem.action_dim, self.generator
        if self.problem.num_actions:
            probs = torch.full((H, A), 1.0 / A, **self.like) if uniform else self.probs
            index = torch.multinomial(probs, n, replacement=True, generator=g).T  # (n, H)
            return torch.nn.functional.one_hot(index, A).to(self.like["dtype"])  # (n, H, A)
        u = torch.rand(n, H, A, generator=g, **self.like)  # (n, H, A)
        if uniform:
            return self.low + u * (self.high - self.low)
        eps = torch.randn(n, H, A, generator=g, **self.like)
        return torch.maximum(torch.minimum(self.mean + self.std * eps, self.high), self.low)

    def _score(self, s: Tensor, plans: Tensor) -> Tensor:
        """Each plan's mean return over the particles, ties broken by the margin: (N,)."""
        return plan_returns(self.problem, self.step, s, plans, self.options.particles, True)

    def act(self, s: Tensor) -> Tensor:
        """The encoded first action (A,) of the plan from state s (S,)."""
        o = self.options
        s = s.to(**self.like)
        if o.method == "random":
            plans = self._draw(o.candidates * o.iterations, uniform=True)  # (N, H, A)
            return plans[self._score(s, plans).argmax(), 0]
        if not self.problem.num_actions:
            self.std = (self.high - self.low).expand_as(self.mean) / 2  # (H, A)
        for _ in range(o.iterations):
            plans = self._draw(o.candidates, uniform=False)  # (N, H, A)
            elite = plans[self._score(s, plans).topk(o.elites).indices]  # (E, H, A)
            if self.problem.num_actions:
                n = self.problem.action_dim  # the elites' action frequencies, floored: (H, n)
                self.probs = (1 - FLOOR) * elite.mean(0) + FLOOR / n
            else:
                self.mean, self.std = elite.mean(0), elite.std(0, unbiased=False)  # (H, A)
        if self.problem.num_actions:
            first = torch.nn.functional.one_hot(self.probs[0].argmax(), self.problem.action_dim)
            uniform = torch.full_like(self.probs[:1], 1.0 / self.problem.action_dim)
            self.probs = torch.cat([self.probs[1:], uniform])  # warm start, shifted
            return first.to(self.like["dtype"])
        first = self.mean[0].clone()
        self.mean = torch.cat([self.mean[1:], ((self.low + self.high) / 2)[None]])  # shifted
        return first
