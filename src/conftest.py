"""Doctest collection of src/: import every dgm package first.

Under ``--import-mode=importlib`` pytest imports a module it collects from its file unless
the module is already in ``sys.modules``; collecting, say, ``dgm/train/memory.py`` before
anything imported ``dgm.train`` ran ``dgm/train/__init__.py`` (which imports ``memory``
through ``run``) and then executed ``memory.py`` a second time, so the module tests patch
was not the one the trainer calls. With every package imported here, pytest finds each
module a package imports already loaded and collects that one."""

import importlib
from pathlib import Path

for init in sorted(Path(__file__).parent.glob("dgm/**/__init__.py")):
    importlib.import_module(".".join(init.parent.relative_to(Path(__file__).parent).parts))
