"""One writer per run directory: an OS lock on ``run.lock`` in the run directory.

``dgm train`` and ``dgm resume`` hold an exclusive ``fcntl.flock`` on it while they write
the run; a second writer is refused at once (``RunInUse``) with the holder's pid, host,
command and start time, which the holder writes into the file. Readers (eval, sample,
complete, report, ...) never take it. The OS releases the lock when the holder's process
ends, however it ends (``kill -9`` included), so a lock is never stale: the file may stay,
but only a live process holds it. Only one process per run takes it (rank 0 under torchrun).
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import socket
import sys
from pathlib import Path
from types import TracebackType
from typing import IO

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks, so nothing marks a live run
    fcntl = None  # type: ignore[assignment]

LOCK = "run.lock"


class RunInUse(FileExistsError):
    """Another live process writes this run directory."""


class RunLock:
    """The exclusive lock on run directory ``run_dir`` (which must exist), held from
    ``acquire()`` (or ``with``) until ``release()`` or the end of the process."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK
        self._file: IO[str] | None = None

    def acquire(self, fix: str = "wait for it to end") -> RunLock:
        """Take the lock without waiting; raise ``RunInUse`` naming the holder and ``fix``
        if another process has it."""
        if fcntl is None or self._file is not None:
            return self
        while True:
            f = open(self.path, "a+")  # held open: the lock lives with it
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read()
                f.close()
                raise RunInUse(
                    f"{self.path.parent} is in use by {describe(holder)}: {fix}"
                ) from None
            try:  # the file may have been removed and made anew while we waited to lock
                same = os.stat(self.path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            f.close()
        f.seek(0)
        f.truncate()
        f.write(json.dumps(holder_record()) + "\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        """Remove the lock file and release the lock (a process that opened the file
        meanwhile sees it gone when it locks, and makes a new one)."""
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            self._file.close()  # closing releases the lock
            self._file = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def holder(run_dir: str | Path) -> str | None:
    """Who holds the lock of ``run_dir`` in words, or None when no live process does. A
    look only (a shared lock taken and dropped at once); it creates no file."""
    path = Path(run_dir) / LOCK
    if fcntl is None or not path.is_file():
        return None
    try:
        with open(path) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return describe(f.read())
    except FileNotFoundError:  # released and removed meanwhile
        return None
    return None


def holder_record() -> dict[str, object]:
    """Who holds a lock: pid, host, command line and start time (UTC)."""
    now = datetime.datetime.now(datetime.UTC)
    argv = list(sys.argv)
    if argv and (Path(argv[0]).name == "dgm" or argv[0].endswith("dgm/__main__.py")):
        argv[0] = "dgm"
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": shlex.join(argv),
        "since": now.strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def describe(text: str) -> str:
    """The holder of a lock in words, from the record it wrote."""
    try:
        h = json.loads(text)
        return f"process {h['pid']} on {h['host']} (`{h['command']}`, since {h['since']})"
    except (ValueError, KeyError, TypeError):  # written a moment ago: not yet readable
        return "another dgm process"
