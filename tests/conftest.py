import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # `import helpers` from any test folder

# The tests' models are tiny: one thread is as fast, and two threads thrash (50-150x slower
# steps measured) whenever anything else holds a core of this 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
