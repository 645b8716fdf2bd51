"""Collecting src/'s doctests first leaves one copy of each dgm module (src/conftest.py):
under --import-mode=importlib pytest once executed dgm/train/memory.py a second time when it
was the first file collected, and a test's patch of ``memory.available_bytes`` then missed
the function the trainer calls (the memory check let a 4 GiB run train)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
CHECK = """
import sys

import dgm.train.run as run


def test_the_trainer_calls_the_memory_module_in_sys_modules():
    assert run.check_training_memory.__globals__ is sys.modules["dgm.train.memory"].__dict__
"""


def test_a_doctest_collected_first_is_not_a_second_copy_of_its_module(tmp_path):
    (tmp_path / "test_one_copy.py").write_text(CHECK)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    argv += ["src/dgm/train/memory.py", str(tmp_path / "test_one_copy.py")]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    assert done.stdout.split()[0] == ".."  # the doctest and the check passed
