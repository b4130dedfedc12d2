"""Debian's headless Chromium in tests, through chromedriver (selenium), with the network off:
every request to another host goes to a proxy that does not exist and every host name fails
to resolve, so a page renders from the file system alone or not at all. The browser's console
is read back (goog:loggingPrefs)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = ("Chromium is not installed ({path} is missing): `make test` installs Debian's "
           "chromium and chromium-driver (or: apt-get install -y chromium chromium-driver)")
# nothing listens on port 9 (discard) here: a request through this proxy fails at once
OFFLINE_FLAGS = ("--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")


def require_chromium() -> None:
    """Fail (not skip) when the browser or its driver is missing."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            raise AssertionError(MISSING.format(path=path))


@contextlib.contextmanager
def offline_chromium(width: int = 1200, height: int = 900):
    """A headless Chromium with a fresh profile and no network; stopped on exit."""
    require_chromium()
    profile = Path(tempfile.mkdtemp(prefix="payline-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, *OFFLINE_FLAGS, f"--user-data-dir={profile}",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[str]:
    """The console's errors (and failed loads) since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def open_file(driver, path: Path) -> None:
    driver.get(path.resolve().as_uri())
    # every script and stylesheet has run once the document is complete
    driver.execute_script("return document.readyState")
