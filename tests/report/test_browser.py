"""The report and the comparison in a real browser (headless Debian chromium driven by
selenium): each page loads from a file with no console errors, every picture decodes
(non-zero natural width) and the metrics table shows the run's numbers. Chromium must be
installed (`apt-get install chromium chromium-driver`; .ci/run does it): without it, or
under DGM_SYSTEM_DATA=off, the test skips and names the packages; under
DGM_SYSTEM_DATA=require (.ci/run's main run) it fails instead."""

from pathlib import Path

import pytest

from dgm.cli import main
from dgm.report.render import fmt
from dgm.run_dir import read_metrics
from system_files import BROWSER, CHROMEDRIVER, CHROMIUM

pytestmark = BROWSER
QUIET = ["--device", "cpu", "--sample-every", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install the headless browser the report test "
            "drives with apt-get install chromium chromium-driver (.ci/run installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A VAE on binarized digits (every picture section) and a GMM on moons."""
    root = tmp_path_factory.mktemp("runs")
    vae = ["vae", "--data", "digits", "--binarize", "static", "--latent-dim", "2"]
    vae += ["--hidden-sizes", "16", "--steps", "10", "--batch-size", "32", "--eval-every", "5"]
    gmm = ["gmm", "--data", "moons", "--steps", "2", "--eval-every", "0"]
    for argv in (vae, gmm):
        assert main(["train", *argv, *QUIET, "--out", str(root / argv[0])]) == 0
    return root / "vae", root / "gmm"


def load(driver, path: Path) -> None:
    """Open ``path``; no console message may be a warning or an error."""
    driver.get_log("browser")  # drop what an earlier page left
    driver.get(path.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    bad = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not bad, bad
    widths = driver.execute_script(
        "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)"
    )
    assert widths and all(w > 0 for w in widths), widths


def cell(driver, key: str, column: int = 1) -> str:
    from selenium.webdriver.common.by import By

    row = driver.find_element(By.CSS_SELECTOR, f'table.metrics tr[data-key="{key}"]')
    return row.find_elements(By.TAG_NAME, "td")[column].text


def test_report_and_compare_pages_in_chromium(browser, runs, tmp_path, capsys):
    vae, gmm = runs
    assert main(["report", str(vae), "--eval-n", "100", "-n", "16", "--threads", "1"]) == 0
    load(browser, vae / "report.html")
    records = read_metrics(vae / "metrics.jsonl")
    last_valid = [r["valid/nll"] for r in records if "valid/nll" in r][-1]
    assert cell(browser, "logged/valid/nll") == fmt(last_valid)
    assert cell(browser, "test/n") == "100" and cell(browser, "test/bound") == "elbo"
    assert len(browser.find_elements("tag name", "img")) == 5

    page = tmp_path / "compare.html"
    argv = ["compare", str(vae), str(gmm), "--out", str(page), "--eval-n", "100", "-n", "16"]
    assert main(argv) == 0
    load(browser, page)
    assert cell(browser, "logged/valid/nll", 1) == fmt(last_valid)
    assert cell(browser, "logged/valid/nll", 2) == "—"  # the GMM logged no validation
