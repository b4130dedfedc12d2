"""The Data Docs as a site of their own: the CDN links of GX's pages pointed at the vendored
files relative to each page (hand-written expected pages), every URL GX 1.24's templates load
covered, the vendored files complete, and the pruning of older runs' results and pages."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from jobs.batch import data_docs

GX_VIEW = Path(importlib.util.find_spec("great_expectations").origin).parent / "render" / "view"
RUN = "2026-01-01T00:00:00Z--2026-01-01T00:05:00Z"

GX_WEB = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
VALIDATION_PAGE = "\n".join([
    "<html><head>",
    '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/'
    'bootstrap.min.css"/>',
    '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>',
    '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>',
    '<script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" '
    'integrity="sha384-x" crossorigin="anonymous"></script>',
    '<link rel="shortcut icon" href="../../../static/images/favicon.ico" type="image/x-icon"/>',
    f"<style>.navbar-brand a {{background: url('{GX_WEB}full_logo_dark.png') 0 0 "
    "no-repeat;}</style>",
    f'</head><body><img class="NO-CACHE" src="{GX_WEB}logo-long.png?d=20261202T010932Z&amp;'
    'dataContextId=1" alt="GX"/>',
    f'<a href="https://greatexpectations.io">Great Expectations</a> {RUN}</body></html>'])

UP = "../../../../"  # validations/<suite>/<run name>/<run time>/
LOCAL_VALIDATION_PAGE = f"""<html><head>
<link rel="stylesheet" href="{UP}static/vendor/bootstrap/bootstrap.min.css"/>

<script src="{UP}static/vendor/jquery/jquery.min.js"></script>
<script src="{UP}static/vendor/bootstrap/bootstrap.min.js"></script>
<link rel="shortcut icon" href="{UP}static/images/favicon.ico" type="image/x-icon"/>
<style>.navbar-brand a {{background: url('{UP}static/images/logo-long.png') 0 0 no-repeat;}}</style>
</head><body><img class="NO-CACHE" src="{UP}static/images/logo-long.png" alt="GX"/>
<a href="https://greatexpectations.io">Great Expectations</a> {RUN}</body></html>"""


def test_a_validation_page_loads_the_sites_own_files(tmp_path):
    site = tmp_path / "local_site"
    page_dir = site / "validations" / "run_rates" / RUN / "20261202T010932.379849Z"
    assert data_docs.rewrite(VALIDATION_PAGE, page_dir, site) == LOCAL_VALIDATION_PAGE
    assert data_docs.external_loads(LOCAL_VALIDATION_PAGE) == []
    assert data_docs.external_loads(VALIDATION_PAGE) == [
        "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css",
        "https://cdn.jsdelivr.net/npm/vega@5", "https://code.jquery.com/jquery-3.7.1.min.js",
        "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js",
        f"{GX_WEB}logo-long.png?d=20261202T010932Z&amp;dataContextId=1",
        f"{GX_WEB}full_logo_dark.png"]
    # a second pass changes nothing
    assert data_docs.rewrite(LOCAL_VALIDATION_PAGE, page_dir, site) == LOCAL_VALIDATION_PAGE


def test_the_index_page_links_from_the_sites_root(tmp_path):
    page = ('<link rel="stylesheet" href="https://unpkg.com/bootstrap-table@1.19.1/dist/'
            'bootstrap-table.min.css">\n<script src="https://cdnjs.cloudflare.com/ajax/libs/'
            'font-awesome/6.6.0/css/all.min.css"></script>')
    assert data_docs.rewrite(page, tmp_path, tmp_path) == (
        '<link rel="stylesheet" href="static/vendor/bootstrap-table/bootstrap-table.min.css">\n'
        '<script src="static/vendor/fontawesome/css/all.min.css"></script>')


def template_loads() -> set[str]:
    """Every http(s) file GX's page templates and default styles load (not the links a reader
    follows)."""
    urls = set()
    for f in (GX_VIEW / "templates").glob("*.j2"):
        urls |= {u.split("?")[0] for u in data_docs.external_loads(f.read_text())}
    css = (GX_VIEW / "static" / "styles" / "data_docs_default_styles.css").read_text()
    urls |= set(data_docs.external_loads(css))
    # top_navbar.j2 builds its logo URL from a variable
    navbar = (GX_VIEW / "templates" / "top_navbar.j2").read_text()
    base = re.search(r'static_images_dir = "(https://[^"]+)"', navbar).group(1)
    urls |= {base + name for name in re.findall(r'static_images_dir \+ "([^"]+)"', navbar)}
    return urls


def test_every_file_gx_templates_load_is_vendored_or_dropped():
    loads = template_loads()
    assert len(loads) >= 16  # the parser finds them
    assert loads <= set(data_docs.CDN) | set(data_docs.IMAGES) | set(data_docs.DROPPED), (
        loads - set(data_docs.CDN) - set(data_docs.IMAGES) - set(data_docs.DROPPED))


def test_the_vendored_files_are_complete_and_licensed():
    for target in data_docs.CDN.values():
        assert (data_docs.ASSETS / target).is_file(), target
    for target in data_docs.IMAGES.values():
        assert (GX_VIEW / "static" / "images" / target).is_file(), target
    css = (data_docs.ASSETS / "fontawesome" / "css" / "all.min.css").read_text()
    fonts = set(re.findall(r"url\(\.\./webfonts/([^)]+\.woff2)\)", css))
    assert fonts and all((data_docs.ASSETS / "fontawesome" / "webfonts" / f).is_file()
                         for f in fonts)
    licences = (data_docs.ASSETS / "LICENSES.md").read_text()
    for folder in {Path(t).parts[0] for t in data_docs.CDN.values()}:
        assert f"| {folder}/ |" in licences, folder


def test_localise_copies_the_files_and_every_link_resolves(tmp_path):
    site = tmp_path / "local_site"
    page = site / "validations" / "run_rates" / RUN / "20261202T010932.379849Z" / "b.html"
    page.parent.mkdir(parents=True)
    page.write_text(VALIDATION_PAGE)
    (site / "static" / "images").mkdir(parents=True)
    for name in ("favicon.ico", "logo-long.png"):
        (site / "static" / "images" / name).write_bytes(b"x")
    data_docs.localise(site)
    text = page.read_text()
    assert text == LOCAL_VALIDATION_PAGE
    for link in re.findall(r'(?:src|href)="(\.\./[^"]+)"', text):
        assert (page.parent / link).resolve().is_file(), link


def store(tmp_path: Path, runs: dict[str, list[str]], suites=("run_rates", "a.b")) -> Path:
    """A GX root with a result and a page of each suite for each run name and run time."""
    root = tmp_path / "gx"
    for run, times in runs.items():
        for t in times:
            for suite in suites:
                ident = (suite, run, t, f"reconciliation-{suite}")
                page = data_docs.page_path(root, ident)
                result = (data_docs.store_dir(root) / Path(*suite.split(".")) / run / t
                          / f"reconciliation-{suite}.json")
                for f in (page, result):
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_text("{}")
    return root


def test_pruning_keeps_the_runs_validated_last(tmp_path):
    root = store(tmp_path, {"R1": ["20260101T000000Z"],
                            "R2": ["20260101T000100Z", "20260103T000000Z"],
                            "R3": ["20260102T000000Z"]})
    assert data_docs.page_path(root, ("a.b", "R1", "T", "x")) == (
        root / "uncommitted/data_docs/local_site/validations/a/b/R1/T/x.html")
    assert data_docs.validation_runs(root) == {"R1": "20260101T000000Z",
                                               "R2": "20260103T000000Z",
                                               "R3": "20260102T000000Z"}
    assert data_docs.prune(root, 2) == ["R1"]
    assert data_docs.validation_runs(root) == {"R2": "20260103T000000Z",
                                               "R3": "20260102T000000Z"}
    site = data_docs.site_dir(root) / "validations"
    assert sorted(p.name for p in (site / "run_rates").iterdir()) == ["R2", "R3"]
    assert sorted(p.name for p in (site / "a" / "b").iterdir()) == ["R2", "R3"]
    assert data_docs.prune(root, 1) == ["R3"]
    assert data_docs.prune(root, 1) == []


def test_a_rerun_replaces_its_runs_results_and_empty_folders_go(tmp_path):
    root = store(tmp_path, {"R1": ["20260101T000000Z"]}, suites=("a.b",))
    data_docs.remove_runs(root, ["R1", "not-there"])
    assert data_docs.validation_runs(root) == {}
    assert not (data_docs.store_dir(root) / "a").exists()
    assert not (data_docs.site_dir(root) / "validations" / "a").exists()
    assert data_docs.store_dir(root).is_dir()
