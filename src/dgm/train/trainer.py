"""One training loop for every model.

The loop knows the contract, never a model's name: it builds one AdamW per key of
``model.param_groups()``, and each step calls ``model.loss(x, c, phase=p)`` for every
phase in ``model.phases``, in order, each on the next batch. Models with the
``ClosedFormFit`` capability (counting, EM) are fitted by ``fit_step`` instead.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from dgm.evaluate.likelihood import evaluate, evaluate_losses
from dgm.model import ClosedFormFit, GenerativeModel, Likelihood
from dgm.report.plots import save_samples
from dgm.train import checkpoint as ckpt
from dgm.train import distributed
from dgm.train.config import TrainConfig
from dgm.train.stream import BatchStream


class TrainingDiverged(RuntimeError):
    """The loss or the parameters became NaN or infinite; the last good checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device")
    return torch.device(name)


class Trainer:
    """Trains ``model`` on ``train_data``, evaluating on ``valid_data``, writing ``run_dir``.

    ``run_dir=None`` trains in memory (nothing written). ``fit()`` returns the last
    logged metrics and stops early, with a checkpoint, on SIGINT/SIGTERM or
    ``request_stop()``.
    """

    def __init__(
        self,
        model: GenerativeModel,
        train_data: Dataset,
        valid_data: Dataset | None,
        config: TrainConfig,
        run_dir: str | Path | None = None,
        *,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.rank, self.world_size, self.device = distributed.setup(resolve_device(config.device))
        self.model = model.to(self.device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.writes = self.run_dir is not None and self.rank == 0  # only rank 0 writes files
        self.valid_data = valid_data.to(self.device) if hasattr(valid_data, "to") else valid_data
        if self.rank > 0:  # same init everywhere (DDP also broadcasts it); own noise per rank
            torch.manual_seed(config.seed + 7919 * self.rank)
        data = train_data.to(self.device) if hasattr(train_data, "to") else train_data
        self.train_data = data
        self.stream = BatchStream(
            data,
            config.batch_size,
            seed=config.seed,
            rank=self.rank,
            world_size=self.world_size,
            device=self.device,
        )
        self.closed_form = isinstance(model, ClosedFormFit)
        if self.closed_form and self.world_size > 1:
            raise ValueError(
                f"{type(model).__name__} is fitted in closed form: train it in one process"
            )
        self.groups = {} if self.closed_form else model.param_groups()
        if not self.closed_form and set(self.groups) != set(model.phases):
            raise ValueError(
                f"{type(model).__name__}.param_groups() has keys {sorted(self.groups)} but its "
                f"phases are {model.phases}: give every phase its parameters"
            )
        self.optimizers = {
            phase: torch.optim.AdamW(
                params,
                lr=config.lr,
                betas=tuple(config.adam_betas),
                weight_decay=config.weight_decay,
            )
            for phase, params in self.groups.items()
        }
        self.forward = distributed.wrap(model, self.device) if self.world_size > 1 else model.loss
        self.amp = config.amp and self.device.type == "cuda"
        self.step = 0
        self.best = math.inf
        self.best_step = -1
        self.progress = progress and self.rank == 0
        self._stop = False
        self._sums: dict[str, Tensor] = {}
        self._sum_steps = 0

    # -- public ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the current step, write a checkpoint and return from ``fit``."""
        self._stop = True

    def resume(self) -> None:
        """Continue from the checkpoint in ``run_dir`` (weights, optimizers, data position, RNG)."""
        if self.run_dir is None:
            raise ValueError("this trainer has no run directory to resume from")
        run_dir = self.run_dir
        state = ckpt.load_trainer_state(run_dir / ckpt.TRAINER_STATE)
        ckpt.load_weights(run_dir / ckpt.WEIGHTS, self.model)
        if ckpt.weights_step(run_dir / ckpt.WEIGHTS) != state["step"]:
            raise ValueError(
                f"{run_dir}: model.safetensors and trainer.pt come from different steps "
                "(a crash between the two writes): it cannot resume exactly; start a new run"
            )
        if state["world_size"] != self.world_size:
            raise ValueError(
                f"the run was trained with {state['world_size']} process(es), "
                f"not {self.world_size}: "
                "resume it with the same number so data order and noise continue exactly"
            )
        self.step, self.best, self.best_step = state["step"], state["best"], state["best_step"]
        for phase, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][phase])
        self.stream.load_state_dict(state["stream"][self.rank])
        rng = state["rng"][self.rank]
        torch.set_rng_state(rng["cpu"])
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def fit(self) -> dict[str, Any]:
        """Train up to ``config.steps``; returns the last logged metrics."""
        cfg = self.config
        last: dict[str, Any] = {}
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not self.progress,
            dynamic_ncols=True,
            mininterval=0.5,
            desc="train",
        )
        train_time, t0 = 0.0, time.perf_counter()
        saved_at = None
        self.model.train()
        with self._stop_on_signals():
            while self.step < cfg.steps and not self._stop:
                self._train_step()
                self.step += 1
                bar.update(1)
                every = (cfg.log_every, cfg.eval_every, cfg.sample_every, cfg.checkpoint_every)
                log, validate, sample, save = (self._due(n) for n in every)
                if not (log or validate or sample or save):
                    continue
                train_time += time.perf_counter() - t0  # periodic work is not training time
                if log:
                    last = self._log(train_time)
                    shown = {k: f"{v:.4g}" for k, v in last.items() if k in ("loss", "nelbo")}
                    bar.set_postfix(shown)
                if validate and self.valid_data is not None:
                    last = {**last, **self._evaluate()}
                if sample:
                    self._write_samples()
                if save:
                    self.save_checkpoint()
                    saved_at = self.step
                t0 = time.perf_counter()
        train_time += time.perf_counter() - t0
        bar.close()
        if self._sum_steps:
            last = {**last, **self._log(train_time)}
        if saved_at != self.step:  # always end (or stop) with a checkpoint
            self.save_checkpoint()
        last["interrupted"] = self._stop and self.step < cfg.steps
        return last

    def save_checkpoint(self) -> None:
        """Write model.safetensors and trainer.pt (rank 0), refusing non-finite weights."""
        if any(not bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            raise TrainingDiverged(
                f"parameters are NaN or infinite at step {self.step}; kept the last good checkpoint"
            )
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        rngs = distributed.gather(rng, self.world_size)
        streams = distributed.gather(self.stream.state_dict(), self.world_size)
        if self.writes:
            state = {
                "step": self.step,
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "stream": streams,
                "rng": rngs,
                "best": self.best,
                "best_step": self.best_step,
                "world_size": self.world_size,
            }
            ckpt.save_trainer_state(self.run_dir / ckpt.TRAINER_STATE, state)
            ckpt.save_weights(self.run_dir / ckpt.WEIGHTS, self.model, self.step)
        distributed.barrier(self.world_size)

    # -- one step ------------------------------------------------------------------------------

    def _train_step(self) -> None:
        if self.closed_form:
            metrics = self.model.fit_step(self._full_pass())
            self._guard(metrics.values(), "fit_step metrics")
            self._accumulate("", metrics)
            self._sum_steps += 1
            return
        factor = self.config.lr_factor(self.step)
        for phase in self.model.phases:
            x, y = self.stream.next()
            c = y if self.model.conditional else None
            opt = self.optimizers[phase]
            for group in opt.param_groups:
                group["lr"] = self.config.lr * factor
            with (
                torch.autocast("cuda", dtype=torch.bfloat16)
                if self.amp
                else contextlib.nullcontext()
            ):
                out = self.forward(x, c, phase=phase)
            opt.zero_grad(set_to_none=True)
            out.value.backward()
            metrics = {"loss": out.value.detach(), **out.metrics}
            clip = self.config.grad_clip
            if clip is not None or self.world_size > 1:
                norm = torch.nn.utils.clip_grad_norm_(
                    self.groups[phase], math.inf if clip is None else clip
                )
                metrics["grad_norm"] = norm
                # the all-reduced gradient's norm is the same on every rank, so all ranks
                # stop together; one rank's loss alone would leave the others waiting
                self._guard([norm], f"phase {phase!r}")
            else:
                self._guard([out.value], f"phase {phase!r}")
            opt.step()
            self._accumulate(phase if len(self.optimizers) > 1 else "", metrics)
        self._sum_steps += 1

    def _guard(self, values: Any, where: str) -> None:
        for v in values:
            if not bool(torch.isfinite(torch.as_tensor(v)).all()):
                raise TrainingDiverged(
                    f"non-finite loss or gradient in {where} at step {self.step + 1}; "
                    "the last good checkpoint is kept: lower --lr or set --grad-clip"
                )

    def _accumulate(self, prefix: str, metrics: dict[str, Any]) -> None:
        for k, v in metrics.items():
            key = f"{prefix}/{k}" if prefix else k
            v = torch.as_tensor(v).detach().float()
            self._sums[key] = self._sums[key] + v if key in self._sums else v.clone()

    def _full_pass(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        n, bs = len(self.train_data), self.config.batch_size
        for index in torch.arange(n).split(bs):
            x, y = self.stream.gather(index)
            yield x, (y if self.model.conditional else None)

    # -- periodic work -------------------------------------------------------------------------

    def _due(self, every: int) -> bool:
        """Periodic work every ``every`` steps (0 = never), and at the last step."""
        return every > 0 and (self.step % every == 0 or self.step == self.config.steps)

    def _log(self, train_time: float) -> dict[str, Any]:
        record: dict[str, Any] = {"step": self.step}
        record.update({k: (v / self._sum_steps).item() for k, v in self._sums.items()})
        record["lr"] = self.config.lr * self.config.lr_factor(self.step - 1)
        record["train_time_s"] = round(train_time, 3)
        self._sums, self._sum_steps = {}, 0
        if self.writes:
            ckpt.append_metrics(self.run_dir / ckpt.METRICS, record)
        return record

    @contextlib.contextmanager
    def _quiet_rng(self) -> Iterator[None]:
        """Evaluation and sample grids draw from a fixed seed and leave the training RNG as
        it was, so they neither perturb nor depend on the run (resume stays exact)."""
        devices = [self.device] if self.device.type == "cuda" else []
        was_training = self.model.training
        self.model.eval()
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(self.config.seed)
            yield
        self.model.train(was_training)

    def _evaluate(self) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if self.rank == 0:
            with self._quiet_rng():
                if self.model.likelihood is Likelihood.NONE:
                    result = evaluate_losses(self.model, self.valid_data, self.config.batch_size)
                else:
                    result = evaluate(
                        self.model, self.valid_data, batch_size=max(256, self.config.batch_size)
                    )
            record = {f"valid/{k}": v for k, v in result.items() if isinstance(v, (int, float))}
            score = result.get("nll", math.nan)
            if self.writes:
                if score < self.best:
                    self.best, self.best_step = score, self.step
                    ckpt.save_weights(self.run_dir / ckpt.BEST_WEIGHTS, self.model, self.step)
                ckpt.append_metrics(
                    self.run_dir / ckpt.METRICS,
                    {"step": self.step, **record, "best_step": self.best_step},
                )
        distributed.barrier(self.world_size)
        return record

    def _write_samples(self) -> None:
        if not self.writes:
            return
        n = 64
        c = (
            torch.arange(n, device=self.device) % self.model.num_classes
            if self.model.conditional
            else None
        )
        with self._quiet_rng():
            gen = torch.Generator(self.device).manual_seed(self.config.seed)
            x = self.model.sample(n, c, generator=gen)
        save_samples(x.float().cpu(), self.run_dir / "samples" / f"step_{self.step:07d}.png")

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handler = lambda signum, frame: self.request_stop()  # noqa: E731
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)
