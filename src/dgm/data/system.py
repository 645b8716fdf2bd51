"""Files of Debian packages that dgm reads when they are there and never needs.

dgm runs on a machine with nothing but Python and the package index: the word list of
``words`` ships in the pip dependency ``english-words``, and every other dataset the
tests use is generated or read from pip packages. A few loaders also look at files that
optional Debian packages install:

- ``fashion_mnist`` (and the captioned variants): /usr/share/datasets/fashion-mnist,
  package ``dataset-fashion-mnist``;
- ``fortunes``: /usr/share/games/fortunes, package ``fortunes-min``.

(The test suite adds chromium and chromedriver, packages ``chromium chromium-driver``,
for the HTML report's browser test.)

The environment variable ``DGM_SYSTEM_DATA`` says what to do with them:

- ``on`` (the default, also when unset or empty): read them when present;
- ``off``: behave as if none were installed, so a check can prove that everything
  else works on a bare machine (``.ci/run`` runs the suite once this way; the tests
  that need the files skip and say which package they need);
- ``require``: read them like ``on``; the test suite then fails, rather than skips, a
  test whose files are missing (``.ci/run``'s main run sets it).

A path the user passes (``--data-root``, ``$DGM_DATA``) is never hidden.

Example:
    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"DGM_SYSTEM_DATA": "off"}):
    ...     system_path(FORTUNES_DIR) is None
    True
"""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_DATA_ENV = "DGM_SYSTEM_DATA"
MODES = ("on", "off", "require")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # dataset-fashion-mnist
FORTUNES_DIR = Path("/usr/share/games/fortunes")  # fortunes-min


def system_data_mode() -> str:
    """``$DGM_SYSTEM_DATA`` checked: ``"on"`` (unset or empty), ``"off"`` or ``"require"``."""
    mode = os.environ.get(SYSTEM_DATA_ENV, "").strip().lower() or "on"
    if mode not in MODES:
        raise ValueError(
            f"{SYSTEM_DATA_ENV}={os.environ[SYSTEM_DATA_ENV]!r}: set it to one of "
            f"{', '.join(MODES)} (or unset it)"
        )
    return mode


def system_path(path: Path) -> Path | None:
    """``path``, a file or folder of a Debian package, or None when ``DGM_SYSTEM_DATA=off``
    hides such files (whether ``path`` exists is left to the caller)."""
    return None if system_data_mode() == "off" else path


def hidden_note(path: Path) -> str:
    """A clause for an error message: why ``path`` was not looked at, or ``""``."""
    return f" ({SYSTEM_DATA_ENV}=off hides {path})" if system_path(path) is None else ""


__all__ = [
    "FASHION_MNIST_DIR",
    "FORTUNES_DIR",
    "SYSTEM_DATA_ENV",
    "hidden_note",
    "system_data_mode",
    "system_path",
]
