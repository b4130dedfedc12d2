"""The analyst report and the Great Expectations Data Docs of a real reconciliation run (a small
lake, tests/support/report_lake.py), opened in Debian's headless Chromium with the network off
(tests/support/browser.py): each page renders with its own styles and scripts, logs no console
error, and shows the run's headline figures from its summary. Without Chromium these tests
fail, saying how to install it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from jobs.batch import data_docs, formats
from jobs.batch import reconcile as job
from runtime import config, times
from tests.support import report_lake
from tests.support.browser import console_errors, offline_chromium, open_file, require_chromium

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def run(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("report-browser")
    cfg = config.load(None, [f"paths.data_dir={root}", f"paths.reports_dir={root / 'reports'}"])
    report_lake.build(cfg.paths.raw_dir, lose_one_aggregate=True)
    return job.run(cfg, *report_lake.INTERVAL, spark)


@pytest.fixture(scope="module")
def browser():
    with offline_chromium() as driver:
        yield driver


def text_of(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def style(driver, css: str, prop: str) -> str:
    return driver.execute_script("return getComputedStyle(document.querySelector(arguments[0]))"
                                 ".getPropertyValue(arguments[1])", css, prop)


def test_chromium_is_installed():
    require_chromium()


def test_the_browser_has_no_network(browser, tmp_path):
    """The check is real: a page that loads a script from a CDN gets an error for it."""
    page = tmp_path / "external.html"
    page.write_text('<!doctype html><html><body><p>x</p><script '
                    'src="https://code.jquery.com/jquery-3.7.1.min.js"></script></body></html>')
    open_file(browser, page)
    errors = console_errors(browser)
    assert any("code.jquery.com" in e and "net::ERR_" in e for e in errors), errors
    assert browser.execute_script("return typeof window.jQuery") == "undefined"


def test_the_analyst_report_renders_offline_with_the_headline_figures(run, browser):
    s = run["summary"]
    open_file(browser, run["report"])
    assert console_errors(browser) == []
    assert len(browser.find_element(By.TAG_NAME, "body").text) > 500
    start, end = report_lake.INTERVAL
    assert text_of(browser, "h1") == f"Reconciliation {times.iso(start)} → {times.iso(end)}"
    # the tiles: the page's own stylesheet lays them out as a grid with coloured edges
    assert style(browser, ".tiles", "display") == "grid"
    assert s["unexplained"] == 1  # the aggregate the stream lost
    assert text_of(browser, "#tile-unexplained b") == "1"
    assert style(browser, "#tile-unexplained", "border-left-color") == "rgb(198, 40, 40)"
    acct = s["accounting"]
    assert text_of(browser, "#tile-accounting b") == "holds"
    assert text_of(browser, "#tile-accounting .note") == (
        f"{acct['raw_records']:,} raw = {acct['accepted']:,} accepted + "
        f"{acct['duplicates']:,} duplicates + {acct['dlq']:,} DLQ")
    assert text_of(browser, "#tile-matched b") == f"{s['matched_pct']:.2f} %"
    # the first run has no baseline: grey and said, not green
    assert s["drift"] == {}
    assert text_of(browser, "#tile-drift b") == "no baseline"
    assert style(browser, "#tile-drift", "border-left-color") == "rgb(158, 158, 158)"
    # every chart loaded
    sizes = browser.execute_script(
        "return Array.from(document.images, i => [i.getAttribute('src'), i.naturalWidth])")
    assert len(sizes) == 4 and all(w > 0 for _, w in sizes), sizes


def test_the_data_docs_render_offline_and_list_the_run(run, browser):
    index = Path(run["summary"]["data_docs"])
    for page in index.parent.rglob("*.html"):
        assert data_docs.external_loads(page.read_text()) == [], page
    open_file(browser, index)
    # bootstrap-table draws the index's table from the page's data: with its scripts missing
    # the index is blank
    rows = browser.find_elements(By.CSS_SELECTOR, "table tbody tr")
    name = formats.run_name(*report_lake.INTERVAL)
    assert len([r for r in rows if name in r.text]) == 3, [r.text for r in rows]
    # the pruning reads GX's own store layout: this run, once
    assert list(data_docs.validation_runs(index.parents[3])) == [name]
    # Bootstrap's stylesheet is applied (only it makes the navbar sticky)
    assert style(browser, "nav.navbar", "position") == "sticky"
    assert console_errors(browser) == []


def test_the_report_links_its_own_validation_pages(run, browser):
    s = run["summary"]
    open_file(browser, run["report"])
    links = {a.text: a.get_attribute("href")
             for a in browser.find_elements(By.CSS_SELECTOR, "table a[href*='/validations/']")}
    assert set(links) == set(s["quality"])
    browser.get(links["accepted_transactions"])
    assert console_errors(browser) == []
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Data asset: recomputed_accepted_transactions" in body
    assert formats.run_name(*report_lake.INTERVAL) in body
    evaluated = re.search(r"Evaluated Expectations\s+(\d+)", body)
    assert evaluated and int(evaluated.group(1)) == s["quality"]["accepted_transactions"][
        "evaluated"]
    # Font Awesome's icons come from the site's copy of its font
    assert browser.execute_script(
        "return document.fonts.check('900 16px \"Font Awesome 6 Free\"')")
    assert "Font Awesome 6 Free" in style(browser, "i.fas", "font-family")
