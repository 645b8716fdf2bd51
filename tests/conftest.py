import ctypes
import os
import platform
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # `import helpers` from any test folder

# The tests' models are tiny: one thread is as fast, and two threads thrash (50-150x slower
# steps measured) whenever anything else holds a core of this 2-core machine.
torch.set_num_threads(1)
# ... and the same for the processes the tests start (`python -m dgm`, torchrun, the demo)
os.environ.setdefault("OMP_NUM_THREADS", "1")

# glibc's malloc serves blocks above a (moving) threshold by mmap and gives freed memory at
# the heap's top back to the system, so the tests' many short-lived tensors of 0.1-10 MB were
# page-faulted in and zeroed by the kernel again and again: 1.8 M page faults and 5.3 s of
# system time in two model test files, against 0.8-1.2 M and 2.4-3.1 s with the thresholds
# fixed high (and 5-15 % less CPU in all). This process, and the processes it starts:
MALLOC = {"TRIM_THRESHOLD_": 256 << 20, "TOP_PAD_": 64 << 20, "MMAP_THRESHOLD_": 64 << 20}
for name, value in MALLOC.items():
    os.environ.setdefault("MALLOC_" + name, str(value))
if platform.libc_ver()[0] == "glibc":
    libc = ctypes.CDLL("libc.so.6")
    # M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD (malloc.h)
    for option, value in zip((-1, -2, -3), MALLOC.values(), strict=True):
        libc.mallopt(option, value)

# torch.manual_seed also queues the seed for CUDA, XPU and MTIA while they are not initialised,
# formatting a stack trace for each (torch.cuda._lazy_call): 0.8 ms a call under pytest's
# stack, 5 of test_contract.py's 27 CPU-s. Where torch finds no accelerator, the CPU's
# generator is the only one there is to seed.
accelerators = (torch.cuda, torch.backends.mps, getattr(torch, "xpu", None))
if not any(a is not None and a.is_available() for a in accelerators):
    torch.random._manual_seed_impl = lambda seed: torch.default_generator.manual_seed(int(seed))


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


# The slowest tests and groups, started first under xdist so that no worker is left alone
# with a long one at the end. A test not named here keeps its place after them; the list
# needs to name the slowest only. Ranked by one `make test` on this 2-core machine while
# it ran other work (load ~20): the seconds are that run's, inflated, and only their order
# matters.
SLOW_FIRST = [
    "tests/train/test_distributed.py",  # one torchrun: a launcher and two workers, 130 s
    "tests/train/test_run_dirs.py::test_two_trains_started_together",  # 2 processes, 141 s
    "tests/train/test_run_dirs.py::test_a_kill_at_every_write_point",  # 39 short runs, 141 s
    "tests/train/test_run_dirs.py::test_a_second_writer_is_refused",  # 130 s
    "tests/test_demo.py::test_demo_stopped_by_sigterm",  # 130 s
    "tests/train/test_trainer.py::test_ctrl_c_checkpoints_and_resume",  # 126 s
    "tests/tasks/test_design.py",  # BoTorch: the module's fixture 98 s, one test 92 s
    "tests/models/test_sequence_models.py::test_a_short_run_on_words",  # 61-64 s
    "tests/train/test_trainer.py::test_gan_generator_moves_towards_the_data",  # 63 s
    "tests/test_readme.py::test_a_docs_python_block_runs[README.md",  # 53 s
    "tests/test_cli_sample_quality.py::test_sampling_options_reach_the_sampler",  # 45 s
    "tests/data/test_ood.py::test_mnist_subset_sizes_and_labels",  # 42 s
    "tests/test_cli_bad_input.py",  # a module fixture, 41 s
    "tests/data/test_info_and_options.py::test_data_info_describes_the_data[mnist_subset",
    "tests/models/test_autoregressive_binary.py::test_training_on_binarized_digits",  # 38 s
    "tests/models/test_autoregressive_binary.py::test_jacobian_of_the_shared_order",  # 37 s
    "tests/models/test_autoregressive_binary.py::test_class_conditional_training",  # 36 s
    "tests/test_cli_tasks.py",  # a module fixture, 35 s
    "tests/models/test_pixelcnn.py::test_training_on_binarized_digits",  # 31 s
    "tests/test_cli_first_use.py::test_misspelled_flags",  # a process, 31 s
    "tests/models/test_pixelrnn.py::test_training_on_binarized_digits",  # 30 s
    "tests/models/test_diffusion_theory.py::test_samplers_with_the_optimal_eps",  # 30 s
]


def _slow_rank(nodeid: str) -> int:
    """The place of a test in SLOW_FIRST (len(SLOW_FIRST) when not named there)."""
    return next((i for i, p in enumerate(SLOW_FIRST) if nodeid.startswith(p)), len(SLOW_FIRST))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist's ``--dist loadgroup`` (``make test``), the tests of a file that
    take a module-scoped fixture as an argument (a trained run, a browser) go to one worker,
    which builds it once; every other test goes to whichever worker is free (an autouse
    module fixture, cheap by custom, does not group its file). On an xdist worker the
    slowest tests (SLOW_FIRST) come first: xdist hands out work in this order (after the
    groups, largest first), so the run does not end with one worker on a slow test."""
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker sorts alike: same collection
        items.sort(key=lambda item: _slow_rank(item.nodeid))  # stable: the rest keep order
    for item in items:
        info = getattr(item, "_fixtureinfo", None)  # doctests have none
        if info is None:
            continue
        defs = [d for name in info.argnames for d in info.name2fixturedefs.get(name, ())]
        if any(d.scope == "module" for d in defs):
            group = item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(group))
            if getattr(config.option, "loadgroup", False):  # set on xdist workers only
                _name_the_group(item, group)


def _name_the_group(item: pytest.Item, group: str) -> None:
    """Append ``@group`` to the test's id, which is how an xdist worker tells the
    controller a test's group. pytest-xdist 3.8 does it by writing ``item._nodeid``, which
    pytest >= 9.2 no longer reads (the id is the structured ``item._id``): the suffix was
    lost and ``--dist loadgroup`` spread a group's tests over both workers, each building
    the module fixture (pytest-dev/pytest-xdist#1386). With older pytest, or an xdist that
    sets the id itself, this does nothing and xdist's own hook (run after this one) acts."""
    node_id = getattr(item, "_id", None)
    if node_id is None or not hasattr(node_id, "parse") or item.nodeid.endswith(f"@{group}"):
        return
    item._id = type(node_id).parse(f"{item.nodeid}@{group}")


def pytest_sessionfinish(session, exitstatus):
    """The test processes' server stops with the session (tests/processes.py)."""
    if "processes" in sys.modules:
        sys.modules["processes"].stop()
