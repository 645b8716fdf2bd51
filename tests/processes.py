"""Processes of their own for the tests that need one (a signal, a lock held by another
process, an exit status, two runs at once), without paying for ``import torch`` in each.

``python(argv, env=...)`` runs ``python ARGV`` (``-m MODULE ARGS``, ``-c CODE ARGS`` or
``SCRIPT ARGS``) in a process forked from a server that has imported torch, its compiler
front end (``torch._dynamo``, which the first optimiser step imports) and dgm once:
multiprocessing's forkserver, started at the first call in each pytest worker. A fresh
``python -m dgm train`` spent about 4 of its 4.8 CPU-s on those imports before its first
step (10 steps of a small VAE, measured); a forked one starts in about 15 ms.

The child is a new process with the environment, working directory, ``sys.argv`` and
stdout/stderr it would have had (both to files, read back by ``communicate``), the default
signal handlers and its own exit status, so signals, locks and exit codes mean what they
mean for ``subprocess.Popen``, whose interface the returned ``Child`` follows as far as
the tests use it. What it does not repeat is the import itself: a test of the entry point
as a user starts it keeps ``subprocess`` (``tests/test_cli_first_use.py``).
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

PRELOAD = ["torch", "torch._dynamo", "dgm.cli", "dgm.demo", "processes"]
_server: multiprocessing.context.BaseContext | None = None


def _context() -> multiprocessing.context.BaseContext:
    global _server
    if _server is None:
        _server = multiprocessing.get_context("forkserver")
        _server.set_forkserver_preload(PRELOAD)
    return _server


def stop() -> None:
    """Stop this process's server and wait for it (the tests' session end, ``conftest``),
    so that its CPU time and its children's count in this process's ``RUSAGE_CHILDREN``,
    as a subprocess's would (``benchmarks.suite_timings`` sums the suite's CPU so)."""
    from multiprocessing import forkserver

    if _server is not None and hasattr(forkserver, "_forkserver"):
        forkserver._forkserver._stop()  # closes its "alive" pipe, then waitpid


def _run(argv: list[str], env: dict[str, str], cwd: str | None, out: str, err: str) -> None:
    """The child: become ``python ARGV`` run with ``env`` in ``cwd``."""
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    # processes this one starts (DataLoader workers) start as they would from `python`:
    # by the platform's default method, not by this server
    multiprocessing.set_start_method(None, force=True)
    threads = env.get("OMP_NUM_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    elif argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]
        sys.path.insert(0, "")
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    else:
        sys.argv = list(argv)
        sys.path.insert(0, str(Path(argv[0]).resolve().parent))
        runpy.run_path(argv[0], run_name="__main__")


class Child:
    """A started ``python(...)``: ``pid``, ``poll``, ``wait``, ``communicate`` (text),
    ``send_signal``, ``kill`` and ``returncode`` (negative: the signal that ended it)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="dgm-child-"))
        self._out, self._err = self._dir / "stdout", self._dir / "stderr"
        self._outputs: tuple[str, str] | None = None
        args = ([str(a) for a in argv], dict(env), cwd, str(self._out), str(self._err))
        self._process = _context().Process(target=_run, args=args)
        self._process.start()
        self.pid = self._process.pid
        self.args = list(argv)

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._process.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        if self._outputs is None:
            self._outputs = self._out.read_text(), self._err.read_text()
            shutil.rmtree(self._dir)
        return self._outputs

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join()


def python(
    argv: Sequence[str | os.PathLike],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
) -> Child:
    """Start ``python ARGV`` (see the module docstring) with ``env`` (default: this
    process's environment) in ``cwd``."""
    env = dict(os.environ if env is None else env)
    return Child([str(a) for a in argv], env, None if cwd is None else str(cwd))


def run(argv: Sequence[str | os.PathLike], *, timeout: float = 300, **kwargs: object) -> tuple:
    """``python(argv)`` to its end: (exit status, stdout, stderr)."""
    child = python(argv, **kwargs)  # type: ignore[arg-type]
    try:
        out, err = child.communicate(timeout)
    finally:
        child.kill()
    return child.returncode, out, err


def ranks(
    argv: Sequence[str | os.PathLike], world_size: int = 2, *, timeout: float = 300
) -> list[tuple[int | None, str, str]]:
    """``python ARGV`` as ``torchrun --standalone --nproc-per-node WORLD_SIZE`` starts it on
    one machine, without torchrun's launcher process: one process per rank with the
    environment torchrun gives its workers (RANK, LOCAL_RANK, WORLD_SIZE,
    LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), and, as torchrun's agent does, the
    rendezvous store kept here for the ranks' whole life (TORCHELASTIC_USE_AGENT_STORE),
    so a script can join and leave process groups several times. (exit status, stdout,
    stderr) of each rank; a rank still running at ``timeout`` is killed.
    ``tests/train/test_distributed.py`` keeps one real torchrun."""
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", 0, world_size, is_master=True, wait_for_workers=False)
    base = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port)}
    base |= {"WORLD_SIZE": str(world_size), "LOCAL_WORLD_SIZE": str(world_size)}
    base |= {"TORCHELASTIC_USE_AGENT_STORE": "True"}
    children = [
        python(argv, env={**base, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(world_size)
    ]
    results = []
    for child in children:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            child.kill()
        results.append((child.returncode, *child.communicate()))
    del store  # the rendezvous ends with the ranks
    return results
