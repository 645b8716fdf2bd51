"""DDIM inversion: x_t from x_s, solving the implicit equation of the deterministic DDIM
step exactly (to a tolerance) instead of the usual explicit approximation, so that
decoding the code of x gives x back (``DDPM.encode``).

The η = 0, unclipped DDIM step from t to the next visited index s is
x_s = a x_t + k ε(x_t, t) (``DDIMScheduler.coefficients``); its inverse is the root of
x_t = (x_s − k ε(x_t, t)) / a, found by fixed-point iteration with Anderson acceleration.

References:
    Song, Meng & Ermon 2020, Denoising Diffusion Implicit Models, arXiv:2010.02502.
    Walker & Ni 2011, Anderson Acceleration for Fixed-Point Iterations,
    doi:10.1137/10078356X.

Example:
    >>> import torch
    >>> from dgm.models.diffusion.schedules import NoiseSchedule, betas_for
    >>> sched = DDIMScheduler(NoiseSchedule(betas_for("cosine", 20)), steps=5)
    >>> eps_model = lambda y: 0.1 * torch.tanh(y)  # a stand-in for the network at t
    >>> x_t = torch.randn(3, 4, dtype=torch.float64)
    >>> t = sched.timesteps[0]
    >>> x_s = sched.step(eps_model(x_t), t, x_t)
    >>> torch.allclose(inverse_step(sched, eps_model, t, x_s), x_t, atol=1e-12)
    True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dgm.models.diffusion.schedulers import DDIMScheduler


def naive_inverse_step(scheduler: DDIMScheduler, eps: Tensor, t: int, x_prev: Tensor) -> Tensor:
    """The explicit (approximate) inverse of the step from t: x_t ≈ (x_s − k ε)/a with
    ε evaluated at x_s instead of x_t (the usual "DDIM inversion"): not exact, the
    starting guess of ``inverse_step``."""
    a, k = scheduler.coefficients(t)
    return (x_prev - k * eps) / a


def inverse_step(
    scheduler: DDIMScheduler,
    eps_model: Callable[[Tensor], Tensor],
    t: int,
    x_prev: Tensor,
    *,
    tol: float | None = None,
    max_iter: int = 100,
    memory: int = 5,
    dampings: tuple[float, ...] = (1.0, 0.5, 0.25),
) -> Tensor:
    """x_t with ``scheduler.step`` (η = 0, no clip) from t giving ``x_prev`` = x_s: the root of
    the implicit x_t = (x_s − k ε(x_t))/a, by fixed-point iteration from the naive
    inverse, accelerated per example by Anderson acceleration (type II, ``memory``
    past residuals; Walker & Ni 2011, doi:10.1137/10078356X), restarted from each
    example's best iterate with the next of ``dampings`` (mixing β of x + β f) while
    some example has not converged after ``max_iter`` iterations.
    ``eps_model`` maps x_t (B, ...) to ε(x_t, t) (B, ...); examples never share a
    least-squares problem. Each example's best iterate is kept and returned once
    max |x_t − (x_s − k ε(x_t))/a| ≤ tol (1 + max |x_t|) (default tol: 100 × the
    dtype's epsilon, 2e-14 in float64, 1e-5 in float32); if some example does not
    get there, a ValueError names the step and the residual."""
    if scheduler.eta != 0 or scheduler.clip is not None:
        raise ValueError(
            "inverse_step inverts the deterministic unclipped DDIM: build the scheduler "
            f"with eta=0 and clip=None (got eta={scheduler.eta}, clip={scheduler.clip})"
        )
    a, k = scheduler.coefficients(t)
    tol = 100 * torch.finfo(x_prev.dtype).eps if tol is None else tol
    B = len(x_prev)

    def fixed_map(x: Tensor) -> Tensor:  # G(x) = (x_s − k ε(x))/a, flattened (B, D)
        return (x_prev - k * eps_model(x.reshape(x_prev.shape))).reshape(B, -1) / a

    best = naive_inverse_step(scheduler, eps_model(x_prev), t, x_prev).reshape(B, -1)  # (B, D)
    best_err = torch.full((B,), float("inf"), dtype=best.dtype, device=best.device)
    for mix in dampings:  # a restart from each example's best iterate, damped more
        best, best_err = anderson(fixed_map, best, best_err, tol, max_iter, memory, mix)
        if (best_err <= tol).all():
            break
    if not (best_err <= tol).all():
        worst = best_err.max().item()
        s = (
            scheduler.timesteps[scheduler.timesteps.index(t) + 1]
            if t != scheduler.timesteps[-1]
            else -1
        )
        raise ValueError(
            f"DDIM inversion did not converge at step t={t} -> s={s}: relative residual "
            f"{worst:.3g} > tolerance {tol:.3g} after {len(dampings)} x {max_iter} "
            "iterations; the DDIM map is not invertible enough there: use more DDIM steps "
            "(latent_steps) or more num_timesteps"
        )
    return best.reshape(x_prev.shape)


def anderson(
    fixed_map: Callable[[Tensor], Tensor],
    x: Tensor,
    best_err: Tensor,
    tol: float,
    max_iter: int,
    memory: int,
    damping: float,
) -> tuple[Tensor, Tensor]:
    """Anderson acceleration (type II) of x = G(x) per row of x (B, D), from x: each row's
    best iterate and its relative residual |G(x) − x|_∞ / (1 + |x|_∞) (B,), stopping when
    every row is within ``tol``. ``best_err`` is the residual already reached at x."""
    tiny = torch.finfo(x.dtype).tiny  # keeps the solve defined when ΔF = 0
    best = x
    dxs: list[Tensor] = []  # Δx_i (B, D), the last ``memory`` differences
    dfs: list[Tensor] = []  # ΔF_i (B, D)
    x_old = f_old = None
    for _ in range(max_iter):
        f = fixed_map(x) - x  # (B, D), the residual of the implicit equation
        err = f.abs().amax(1) / (1 + x.abs().amax(1))  # (B,), relative
        better = err < best_err  # keep each row's best iterate (AA is not monotone)
        best = torch.where(better[:, None], x, best)
        best_err = torch.where(better, err, best_err)
        done = best_err <= tol
        if done.all():
            break
        if f_old is not None:
            dxs, dfs = [*dxs, x - x_old][-memory:], [*dfs, f - f_old][-memory:]
        x_old, f_old = x, f
        step = x + damping * f
        if dfs:
            dF, dX = torch.stack(dfs, 2), torch.stack(dxs, 2)  # (B, D, m)
            gram = dF.transpose(1, 2) @ dF  # (B, m, m), one problem per row
            ridge = torch.finfo(x.dtype).eps * gram.diagonal(dim1=1, dim2=2).sum(1)
            eye = torch.eye(len(dfs), dtype=x.dtype, device=x.device)
            gamma = torch.linalg.solve(
                gram + (ridge[:, None, None] + tiny) * eye, dF.transpose(1, 2) @ f[..., None]
            )  # (B, m, 1): argmin_γ ‖f − ΔF γ‖ per row
            step = step - ((dX + damping * dF) @ gamma)[..., 0]
        x = torch.where(done[:, None], best, step)  # converged rows stay put
    return best, best_err


__all__ = ["anderson", "inverse_step", "naive_inverse_step"]
