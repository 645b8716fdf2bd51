import os
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


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist's ``--dist loadgroup`` (``make test``), the tests of a file that
    take a module-scoped fixture as an argument (a trained run, a browser) go to one worker,
    which builds it once; every other test goes to whichever worker is free (an autouse
    module fixture, cheap by custom, does not group its file)."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)  # doctests have none
        if info is None:
            continue
        defs = [d for name in info.argnames for d in info.name2fixturedefs.get(name, ())]
        if any(d.scope == "module" for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
