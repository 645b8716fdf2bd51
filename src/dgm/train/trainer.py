"""One training loop for every model.

The loop knows the contract, never a model's name: it builds one AdamW per key of
``model.param_groups()`` (a phase's torch-style group dicts override lr, betas and weight
decay), and each step calls ``model.loss(x, c, phase=p)`` for every phase in
``model.phases``, in order, each on the next batch; a phase listed k times is logged as
the mean of its k calls. Before each step the model is told the step
(``model.training_step``); a step whose gradient is not finite is refused before it
changes a parameter; an optional EMA of the weights serves samples and validation. Before
the optimizers and the EMA are built, a model's data-dependent initialisation
(``model.initialize``) runs once on a seeded batch, so the EMA starts from initialised
weights.
Models with the ``ClosedFormFit`` capability (counting, EM) are fitted by ``fit_step``.

A checkpoint is committed as one unit (``dgm.train.checkpoint.commit``): the weights, the
EMA, the best weights and the trainer state of one step, or nothing. It is written before
that step's sample picture, and a signal while a picture is drawn stops at once.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from dgm import run_dir as rd
from dgm.data.dataset import take
from dgm.evaluate.likelihood import evaluate, evaluate_losses
from dgm.model import ClosedFormFit, GenerativeModel, Likelihood
from dgm.report.plots import save_curves
from dgm.train import checkpoint as ckpt
from dgm.train import distributed
from dgm.train.config import TrainConfig
from dgm.train.data_check import check_splits
from dgm.train.metric_sums import MetricSums
from dgm.train.optim import WeightAverage, build_optimizer
from dgm.train.pictures import write_picture
from dgm.train.stream import stream_for


class TrainingDiverged(RuntimeError):
    """The loss, the gradient or the parameters became NaN or infinite; the bad step is not
    applied and the last good checkpoint is kept."""


class _SamplingInterrupted(Exception):
    """SIGINT/SIGTERM while a sample picture was drawn: the picture is given up."""


CURVES = "curves.png"  # the training curves, drawn from metrics.jsonl at the end of a run


class Trainer:
    """Trains ``model`` on ``train_data``, evaluating on ``valid_data``, writing ``run_dir``.

    ``run_dir=None`` trains in memory (nothing written). Every example of both splits is
    checked against the model once, here, before anything is written; ``fit()`` then
    skips the per-step value scan (``model.check_values``). ``fit()`` returns the last
    logged metrics and stops early, with a checkpoint, on SIGINT/SIGTERM or
    ``request_stop()``; at its end it draws metrics.jsonl into curves.png. Sample pictures
    take ``config.sample_count`` samples drawn with ``config.sample_options``.
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
        self.rank, self.world_size, self.device = distributed.setup(
            rd.resolve_device(config.device)
        )
        self.model = model.to(self.device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.writes = self.run_dir is not None and self.rank == 0  # only rank 0 writes files
        self.valid_data = valid_data.to(self.device) if hasattr(valid_data, "to") else valid_data
        if self.rank > 0:  # same init everywhere (DDP also broadcasts it); own noise per rank
            torch.manual_seed(config.seed + 7919 * self.rank)
        data = train_data.to(self.device) if hasattr(train_data, "to") else train_data
        self.train_data = data
        check_splits(
            self.model,
            {"train": data, "valid": self.valid_data},
            device=self.device,
            seed=config.seed,
            batch_size=config.batch_size,
        )
        self.stream = stream_for(
            data,
            config.batch_size,
            seed=config.seed,
            rank=self.rank,
            world_size=self.world_size,
            device=self.device,
            workers=config.workers,
            rank_split=config.rank_split,
        )
        model.sample_settings(config.sample_options)  # an option it does not take: refused now
        self.closed_form = isinstance(model, ClosedFormFit)
        if self.closed_form and self.world_size > 1:
            raise ValueError(
                f"{type(model).__name__} is fitted in closed form: train it in one process"
            )
        if self.closed_form and config.ema_decay is not None:
            raise ValueError(
                f"{type(model).__name__} is fitted in closed form: an EMA of its weights "
                "averages nothing useful; leave ema_decay unset"
            )
        if config.patience and (model.likelihood is Likelihood.NONE or valid_data is None):
            why = (
                "there is no valid split"
                if valid_data is None
                else f"{type(model).__name__} has no likelihood"
            )
            raise ValueError(f"patience stops on the valid NLL, and {why}: leave patience at 0")
        if not self.closed_form and type(model).initialize is not GenerativeModel.initialize:
            self._initialize()  # before the optimizers and the EMA take the weights
        groups = {} if self.closed_form else model.param_groups()
        if not self.closed_form and set(groups) != set(model.phases):
            raise ValueError(
                f"{type(model).__name__}.param_groups() has keys {sorted(groups)} but its "
                f"phases are {model.phases}: give every phase its parameters"
            )
        self.optimizers = {
            phase: build_optimizer(phase, entries, config, model)
            for phase, entries in groups.items()
        }
        self.params = {  # each phase's parameters, flat: the gradient norm's scope
            phase: [p for g in opt.param_groups for p in g["params"]]
            for phase, opt in self.optimizers.items()
        }
        self.forward = distributed.wrap(model, self.device) if self.world_size > 1 else model.loss
        self.amp = config.amp and self.device.type == "cuda"
        self.ema = None if config.ema_decay is None else WeightAverage(model, config.ema_decay)
        self.step = 0
        self.best = math.inf
        self.best_step = -1
        self.saved_step: int | None = None  # the step of the checkpoint on disk, if any
        self.progress = progress and self.rank == 0
        self._best_state: dict[str, Tensor] | None = None  # new best weights, not yet saved
        self._stop = False
        self._drawing = False  # a sample picture is being drawn: a signal interrupts it
        self._picture_cut = False
        self._sums = MetricSums()  # the metrics since the last log, summed on the device
        self._one_norm: dict[str, bool] = {}  # phase -> its gradients take one foreach norm

    # -- public ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the current step, write a checkpoint and return from ``fit``."""
        self._stop = True

    def resume(self) -> None:
        """Continue from the checkpoint in ``run_dir`` (weights, optimizers, data position, RNG)."""
        if self.run_dir is None:
            raise ValueError("this trainer has no run directory to resume from")
        state = ckpt.restore(self.run_dir, self.model, self.ema)
        if state["world_size"] != self.world_size:
            raise ValueError(
                f"the run was trained with {state['world_size']} process(es), "
                f"not {self.world_size}: "
                "resume it with the same number so data order and noise continue exactly"
            )
        self.step, self.best, self.best_step = state["step"], state["best"], state["best_step"]
        self.saved_step = self.step
        self.model.training_step = self.step
        for phase, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][phase])
        self.stream.load_state_dict(state["stream"][self.rank])
        rng = state["rng"][self.rank]
        torch.set_rng_state(rng["cpu"])
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def start_from(self, tensors: dict[str, Tensor]) -> None:
        """Start from given weights (another run's, ``dgm train --init-from``) rather than a
        fresh initialisation; the EMA starts from them too. Optimizers start afresh."""
        self.model.load_state_dict(tensors)
        if self.ema is not None:
            self.ema = WeightAverage(self.model, self.config.ema_decay)  # type: ignore[arg-type]

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
        train_time, t0, start = 0.0, time.perf_counter(), self.step
        self.model.train()
        check_values = self.model.check_values
        self.model.check_values = False  # every example was checked up front (check_splits)
        every = (cfg.log_every, cfg.eval_every, cfg.sample_every, cfg.checkpoint_every)
        due = self._next_due(every)
        try:
            with self._stop_on_signals():
                while self.step < cfg.steps and not self._stop and not self.plateaued():
                    self._train_step()
                    self.step += 1
                    bar.update(1)
                    if self.step < due:  # no periodic work before then
                        continue
                    due = self._next_due(every)
                    log, validate, sample, save = (self._due(n) for n in every)
                    if not (log or validate or sample or save):  # the last step, none due
                        continue
                    train_time += time.perf_counter() - t0  # periodic work is not training time
                    if log:
                        last = self._log(train_time)
                        bar.set_postfix(self._postfix(last))
                    if validate and self.valid_data is not None:
                        last = {**last, **self._evaluate()}
                    if save:  # before the picture: a slow or stopped picture loses nothing
                        self.save_checkpoint()
                    if sample:
                        self._draw_picture()
                    t0 = time.perf_counter()
            train_time += time.perf_counter() - t0
            if self._sums:  # steps since the last log
                last = {**last, **self._log(train_time)}
            if self.saved_step != self.step:  # always end (or stop) with a checkpoint
                self.save_checkpoint()
            if self.writes and self.step != start and (self.run_dir / rd.METRICS).is_file():
                save_curves(self.run_dir / rd.METRICS, self.run_dir / CURVES)
        finally:
            self.model.check_values = check_values
            bar.close()
        last["interrupted"] = self._stop and (self.step < cfg.steps or self._picture_cut)
        if self.plateaued() and self.step < cfg.steps:
            last.update(step=self.step, stopped_early=True, patience=cfg.patience)
            last.update(best_step=self.best_step, best_nll=self.best)
        return last

    def plateaued(self) -> bool:
        """Early stopping (``config.patience``): ``patience`` evaluations in a row have found
        no lower valid NLL than the best. A function of the step and the best's step alone,
        so a resumed run stops where an uninterrupted one does."""
        cfg = self.config
        if not cfg.patience:
            return False
        return self.step - max(self.best_step, 0) >= cfg.patience * cfg.eval_every

    def save_checkpoint(self) -> None:
        """Commit the checkpoint of this step as one unit (rank 0): model.safetensors,
        trainer.pt, ema.safetensors with EMA on, best.safetensors once validation found a
        best; refusing non-finite weights."""
        if any(not bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            raise TrainingDiverged(
                f"parameters are NaN or infinite at step {self.step}; {self._kept()}"
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
            model, step = self.model, self.step

            def weights(values: dict[str, Tensor] | None, at: int) -> Callable[[Any], None]:
                return lambda path: rd.save_weights(path, model, at, values)

            writers = {rd.WEIGHTS: weights(None, step)}
            if self.ema is not None:
                writers[rd.EMA_WEIGHTS] = weights(self.ema.state_dict(), step)
            carried = {}
            if self._best_state is not None:
                writers[rd.BEST_WEIGHTS] = weights(self._best_state, self.best_step)
            elif rd.weights_file(self.run_dir, rd.BEST_WEIGHTS).is_file():
                carried[rd.BEST_WEIGHTS] = rd.weights_file(self.run_dir, rd.BEST_WEIGHTS)
            writers[ckpt.TRAINER_STATE] = lambda path: torch.save(state, path)
            ckpt.commit(self.run_dir, step, writers, carried)
            self._best_state = None
        self.saved_step = self.step
        distributed.barrier(self.world_size)

    # -- one step ------------------------------------------------------------------------------

    def _train_step(self) -> None:
        self.model.training_step = self.step  # updates so far: the model's own schedules
        if self.closed_form:
            with torch.no_grad():
                metrics = self.model.fit_step(self._full_pass())
            finite = [bool(torch.isfinite(torch.as_tensor(v)).all()) for v in metrics.values()]
            if not all(finite):
                raise TrainingDiverged(
                    f"non-finite fit_step metrics at step {self.step + 1}; {self._kept()}"
                )
            self._sums.add("", metrics)
            return
        factor = self.config.lr_factor(self.step)
        clip = self.config.grad_clip
        for phase in self.model.phases:
            x, y, context = self.stream.next()
            c = self.model.conditioning.pick(y, context)
            opt, params = self.optimizers[phase], self.params[phase]
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * factor
            with (
                torch.autocast("cuda", dtype=torch.bfloat16)
                if self.amp
                else contextlib.nullcontext()
            ):
                out = self.forward(x, c, phase=phase)
            opt.zero_grad(set_to_none=True)
            weight = self.stream.weight  # makes DDP's mean of the ranks' gradients the batch's
            (out.value * weight if weight != 1 else out.value).backward()
            grads = [p.grad for p in params if p.grad is not None]
            norm = self._grad_norm(phase, grads) if grads else out.value.new_zeros(())
            # the all-reduced gradient's norm is the same on every rank, so all ranks stop
            # together; one rank's loss alone would leave the others waiting. Read as
            # Python floats: two reads cost less than three tensor ops and one
            finite = math.isfinite(norm.item())
            if self.world_size == 1:
                finite = finite and math.isfinite(out.value.item())
            if not finite:  # before opt.step(): the bad step changes no parameter
                raise TrainingDiverged(
                    f"non-finite loss or gradient norm in phase {phase!r} at step "
                    f"{self.step + 1}; the parameters keep their values from before it, "
                    f"{self._kept()}"
                )
            if clip is not None:
                torch.nn.utils.clip_grads_with_norm_(params, clip, norm)
            opt.step()
            metrics = {"loss": out.value, **out.metrics, "grad_norm": norm}
            self._sums.add(phase if len(self.optimizers) > 1 else "", metrics)
        if self.ema is not None:
            self.ema.update()

    def _kept(self) -> str:
        """What is safe on disk, and the fix, for a divergence message."""
        fix = (
            "lower --lr or --grad-clip"
            if self.config.grad_clip
            else "lower --lr or set --grad-clip"
        )
        if self.run_dir is None:
            return f"nothing was written (training in memory): {fix}"
        if self.saved_step is None:
            return f"no checkpoint was written yet: {fix}"
        return f"the last good checkpoint (step {self.saved_step}) is kept: {fix}"

    def _grad_norm(self, phase: str, grads: list[Tensor]) -> Tensor:
        """The 2-norm of all ``grads``, as ``torch.nn.utils.get_total_norm`` computes it; when
        they share one device and dtype (decided on the phase's first step), its single
        foreach norm without the grouping around it."""
        one = self._one_norm.get(phase)
        if one is None:
            kinds = {(g.device, g.dtype, g.layout) for g in grads}
            one = len(kinds) == 1 and grads[0].layout == torch.strided
            one = one and grads[0].device.type in ("cpu", "cuda")
            self._one_norm[phase] = one
        if not one:
            return torch.nn.utils.get_total_norm(grads)
        with torch.no_grad():
            return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)

    def _full_pass(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        n, bs = len(self.train_data), self.config.batch_size
        for index in torch.arange(n).split(bs):
            x, y, context = self.stream.gather(index)
            yield x, self.model.conditioning.pick(y, context)

    # -- periodic work -------------------------------------------------------------------------

    def _next_due(self, every: tuple[int, ...]) -> int:
        """The first step after this one at which some periodic work of ``every`` (periods,
        0 = never) is due: the earliest next multiple, or the last step."""
        return min([self.config.steps] + [(self.step // n + 1) * n for n in every if n > 0])

    def _due(self, every: int) -> bool:
        """Periodic work every ``every`` steps (0 = never), and at the last step."""
        return every > 0 and (self.step % every == 0 or self.step == self.config.steps)

    def _log(self, train_time: float) -> dict[str, Any]:
        record: dict[str, Any] = {"step": self.step}
        record.update(self._sums.means())
        record["lr"] = self.config.lr * self.config.lr_factor(self.step - 1)
        record["train_time_s"] = round(train_time, 3)
        if self.writes:
            rd.append_metrics(self.run_dir / rd.METRICS, record)
        return record

    @staticmethod
    def _postfix(record: dict[str, Any]) -> dict[str, str]:
        """The progress bar's numbers: every phase's loss and the first two metrics the
        model's Loss reports, whatever their names."""
        own = ("step", "lr", "train_time_s")
        names = [k for k in record if k not in own and k.rpartition("/")[2] != "grad_norm"]
        losses = [k for k in names if k.rpartition("/")[2] == "loss"]
        shown = losses + [k for k in names if k not in losses][:2]
        return {k: f"{record[k]:.4g}" for k in shown}

    @contextlib.contextmanager
    def _quiet_rng(self) -> Iterator[None]:
        """Evaluation and sample grids draw from a fixed seed and leave the training RNG as
        it was, so they neither perturb nor depend on the run (resume stays exact)."""
        devices = [self.device] if self.device.type == "cuda" else []
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                torch.manual_seed(self.config.seed)
                yield
        finally:
            self.model.train(was_training)

    def _evaluate(self) -> dict[str, Any]:
        """Score the valid split: a likelihood model on every rank, each its share of the
        batches, all-reduced (the same number as one process); a model without one on rank
        0. Only rank 0 keeps the best weights and writes the record."""
        record: dict[str, Any] = {}
        share = self.model.likelihood is not Likelihood.NONE
        if self.rank == 0 or share:
            with self._quiet_rng(), self._averaged():
                if not share:
                    result = evaluate_losses(self.model, self.valid_data, self.config.batch_size)
                else:  # the model's cheaper validation score; `dgm eval` computes the full one
                    result = evaluate(
                        self.model,
                        self.valid_data,
                        batch_size=max(256, self.config.batch_size),
                        validation=True,
                        rank=self.rank,
                        world_size=self.world_size,
                    )
                record = {f"valid/{k}": v for k, v in result.items() if isinstance(v, (int, float))}
                score = result.get("nll", math.nan)
                if score < self.best:  # every rank sees the all-reduced score: one stop
                    self.best, self.best_step = score, self.step
                if self.writes and self.best_step == self.step:  # the weights scored
                    self._best_state = {  # written with the next checkpoint, as one unit
                        k: v.detach().to("cpu", copy=True)
                        for k, v in self.model.state_dict().items()
                    }
            if self.writes:
                rd.append_metrics(
                    self.run_dir / rd.METRICS,
                    {"step": self.step, **record, "best_step": self.best_step},
                )
        distributed.barrier(self.world_size)
        return record

    def _draw_picture(self) -> None:
        """``_write_samples``, given up (the checkpoint is already safe) on SIGINT/SIGTERM."""
        try:
            self._write_samples()
        except _SamplingInterrupted:
            self._picture_cut = True
        finally:
            self._drawing = False

    def _write_samples(self) -> None:
        if not self.writes:
            return
        path = self.run_dir / "samples" / f"step_{self.step:07d}.png"
        with self._quiet_rng(), self._averaged():  # a fixed seed: resume stays exact
            write_picture(
                self.model,
                path,
                self.train_data,
                self.valid_data,
                count=self.config.sample_count,
                options=self.config.sample_options,
                seed=self.config.seed,
                device=self.device,
                guard=self._sampling,
                progress=self.progress,
                desc=f"samples at step {self.step}",
            )

    @contextlib.contextmanager
    def _sampling(self) -> Iterator[None]:
        """Inside the model's sampler a signal raises (a picture may take minutes): only
        there, so the EMA swap and the RNG fork around it always unwind."""
        self._drawing = True
        try:
            yield
        finally:
            self._drawing = False

    def _averaged(self) -> contextlib.AbstractContextManager[None]:
        """The EMA weights in the model for the duration, when EMA is on."""
        return self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext()

    def _initialize(self) -> None:
        """The model's data-dependent initialisation (``GenerativeModel.initialize``, e.g.
        Glow's ActNorm) on one batch of the training data drawn with the run's seed, the same
        on every rank, inside a forked RNG: the training draws are as they would be without
        it. A resumed run then loads its weights over the result."""
        gen = torch.Generator().manual_seed(self.config.seed)
        n = len(self.train_data)  # type: ignore[arg-type]
        index = torch.randperm(n, generator=gen)[: self.config.batch_size]
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            draws = torch.Generator(self.device).manual_seed(self.config.seed)
            x, y, context = take(self.train_data, index, self.device, draws)
            self.model.initialize(x, self.model.conditioning.pick(y, context))

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: object) -> None:
            self.request_stop()
            if self._drawing:  # a picture may take minutes: give it up now
                raise _SamplingInterrupted

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)
