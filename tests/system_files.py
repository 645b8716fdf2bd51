"""Skip marks for the tests that need an optional Debian package, honouring
``DGM_SYSTEM_DATA`` (see ``dgm.data.system``): ``off`` hides the files, so these tests
skip and name the package; ``require`` makes them run, and fail, when a file is missing.
Nothing else in the suite may skip."""

from pathlib import Path

import pytest

from dgm.data.system import FASHION_MNIST_DIR, SYSTEM_DATA_ENV, system_data_mode

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def needs(packages: str, *paths: Path) -> pytest.MarkDecorator:
    """Skip unless every one of ``paths`` (installed by the Debian ``packages``) exists."""
    mode = system_data_mode()
    if mode == "off":
        why = f"{SYSTEM_DATA_ENV}=off hides it"
    else:
        missing = [str(p) for p in paths if not p.exists()]
        why = f"{', '.join(missing)} not found" if missing else ""
    return pytest.mark.skipif(
        bool(why) and mode != "require",
        reason=f"optional: needs `apt-get install {packages}` ({why})",
    )


FASHION_MNIST = needs("dataset-fashion-mnist", FASHION_MNIST_DIR)
BROWSER = needs("chromium chromium-driver", CHROMIUM, CHROMEDRIVER)
