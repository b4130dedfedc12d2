"""The Great Expectations Data Docs of the reconciliation runs: a site that opens from disk
offline, with the pages of a bounded number of runs.

GX's page templates load Bootstrap, jQuery, bootstrap-table, Font Awesome and its logo from
CDNs; offline, its pages are unstyled and its index blank (bootstrap-table draws the index's
table). :func:`localise` copies the same files, vendored in ``data_docs_static/`` (its
``LICENSES.md`` names each package, version and licence), into ``<site>/static/vendor/`` and
points every page at them with links relative to the page; the logo and favicon come from the
``static/images/`` GX copies into the site itself. Vega, which GX loads for the charts of
distribution expectations, is dropped: these suites have none.

Each reconciliation run validates under a GX run name that is its interval
(``2026-12-01T10:00:00Z--2026-12-01T10:05:00Z``); a re-run of an interval replaces that run's
validation results (:func:`remove_runs` first), and :func:`prune` keeps the results and pages of
the ``batch.data_docs_keep_runs`` runs validated last. The paths are those of GX's file stores:
``<gx>/uncommitted/validations/<suite>/<run name>/<run time>/<batch>.json`` and the same under
``<gx>/uncommitted/data_docs/local_site/validations/`` with ``.html``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from importlib import resources
from pathlib import Path

# next to this module in a checkout or an installed wheel; inside the zip when the code came
# as spark-submit --py-files (if the zip carries them)
ASSETS = resources.files(__package__) / "data_docs_static"
VENDOR = Path("static") / "vendor"
SITE_NAME = "local_site"
# the site's configuration in the GX project: the validation pages through this project's
# renderer (jobs/batch/gx_pages.py: the data asset named); no "how to" buttons and walkthrough
# (they are for someone setting GX up, not for the analyst)
SITE_CONFIG = {
    "class_name": "SiteBuilder",
    "show_how_to_buttons": False,
    "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                      "base_directory": f"uncommitted/data_docs/{SITE_NAME}/"},
    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    "site_section_builders": {"validations": {"renderer": {
        "module_name": "jobs.batch.gx_pages", "class_name": "ValidationPage"}}},
}

# every URL GX 1.24's templates load a file from, and the vendored file (under VENDOR)
CDN = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css":
        "bootstrap-table/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css":
        "bootstrap-table/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js":
        "bootstrap-table/bootstrap-table-filter-control.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": "bootstrap-datepicker/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": "bootstrap-datepicker/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css": "bootstrap-dark/bootstrap-prefers-dark.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "fontawesome/css/all.min.css",
}
GX_WEB_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
# GX's logos on its web server, and the one it ships (copied into <site>/static/images/)
IMAGES = {GX_WEB_ASSETS + "logo-long.png": "logo-long.png",
          GX_WEB_ASSETS + "full_logo_dark.png": "logo-long.png"}
DROPPED = ("https://cdn.jsdelivr.net/npm/vega@5", "https://cdn.jsdelivr.net/npm/vega-lite@5",
           "https://cdn.jsdelivr.net/npm/vega-embed@6")

_TAG = re.compile(r"<(?:script|link|img)\b[^>]*>(?:\s*</script>)?", re.S)
_LINK = re.compile(r'\b(src|href)="([^"]*)"')
_SRI = re.compile(r'\s+(?:integrity|crossorigin)="[^"]*"')
_LOADED_LINK = re.compile(r'\brel="(?:stylesheet|[^"]*icon)"')
_CSS_URL = re.compile(r"""url\((['"]?)(https?://[^'")]+)\1\)""")


def site_dir(gx_root: Path) -> Path:
    return gx_root / "uncommitted" / "data_docs" / SITE_NAME


def store_dir(gx_root: Path) -> Path:
    return gx_root / "uncommitted" / "validations"


def _rel(target: Path, page_dir: Path) -> str:
    return Path(os.path.relpath(target, page_dir)).as_posix()


def rewrite(text: str, page_dir: Path, site: Path) -> str:
    """One page with its CDN files and GX's logos pointed at the site's own copies (links
    relative to ``page_dir``), the Vega scripts dropped and GX's site images linked at the
    page's real depth (GX's favicon link of a validation page is one folder short)."""
    def local(url: str) -> str | None:
        base = url.split("?", 1)[0]
        if base in CDN:
            return _rel(site / VENDOR / CDN[base], page_dir)
        if base in IMAGES:
            return _rel(site / "static" / "images" / IMAGES[base], page_dir)
        if "://" not in base and "static/images/" in base:
            return _rel(site / "static" / "images" / base.split("static/images/", 1)[1],
                        page_dir)
        return None

    def tag(m: re.Match) -> str:
        whole = m.group(0)
        found = _LINK.search(whole)
        if found is None:
            return whole
        if found.group(2) in DROPPED:
            return ""
        target = local(found.group(2))
        if target is None:
            return whole
        # integrity and crossorigin make Chrome fetch a file:// script in CORS mode: blocked
        whole = _SRI.sub("", whole)
        return whole.replace(found.group(0), f'{found.group(1)}="{target}"', 1)

    def css_url(m: re.Match) -> str:
        target = local(m.group(2))
        return m.group(0) if target is None else f"url('{target}')"

    return _CSS_URL.sub(css_url, _TAG.sub(tag, text))


def external_loads(text: str) -> list[str]:
    """The http(s) URLs a page loads (scripts, stylesheets, images, CSS url()); links to
    other sites that the reader may follow are not loads."""
    loads = []
    for m in _TAG.finditer(text):
        found = _LINK.search(m.group(0))
        if found is None or not found.group(2).startswith(("http://", "https://", "//")):
            continue
        if m.group(0).startswith("<link") and not _LOADED_LINK.search(m.group(0)):
            continue  # e.g. rel="canonical": a reference, not a load
        loads.append(found.group(2))
    return loads + [m.group(2) for m in _CSS_URL.finditer(text)]


def _copy(source, target: Path) -> None:
    for item in source.iterdir():
        if item.is_dir():
            _copy(item, target / item.name)
        else:
            target.mkdir(parents=True, exist_ok=True)
            (target / item.name).write_bytes(item.read_bytes())


def localise(site: Path) -> None:
    """Copy the vendored files into the site and rewrite every page of it (idempotent).
    Code shipped without them leaves the pages as GX wrote them (they need the network)."""
    if not ASSETS.is_dir():
        print(f"data docs: {ASSETS} is not shipped with this code: the pages load their "
              "styles and scripts from CDNs", file=sys.stderr)
        return
    _copy(ASSETS, site / VENDOR)
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = rewrite(text, page.parent, site)
        if new != text:
            page.write_text(new, encoding="utf-8")


def page_path(gx_root: Path, identifier: tuple[str, str, str, str]) -> Path:
    """The page of one validation result, from its (suite, run name, run time, batch id)."""
    suite, run, run_time, batch = identifier
    return (site_dir(gx_root) / "validations" / Path(*suite.split("."))
            / run / run_time / f"{batch}.html")


def _run_dirs(base: Path, suffix: str) -> list[tuple[str, str, Path]]:
    """(run name, run time, folder of that run and time) of every file ``*suffix`` under
    ``base`` laid out as ``<suite...>/<run name>/<run time>/<batch><suffix>``."""
    if not base.is_dir():
        return []
    return [(f.parent.parent.name, f.parent.name, f.parent.parent)
            for f in base.rglob(f"*{suffix}") if f.is_file()]


def validation_runs(gx_root: Path) -> dict[str, str]:
    """Every run name with a stored validation result, and its newest run time."""
    runs: dict[str, str] = {}
    for name, run_time, _ in _run_dirs(store_dir(gx_root), ".json"):
        runs[name] = max(runs.get(name, ""), run_time)
    return runs


def remove_runs(gx_root: Path, names) -> None:
    """Delete the validation results and pages of the runs ``names`` (and folders left
    empty)."""
    names = set(names)
    for base, suffix in ((store_dir(gx_root), ".json"),
                         (site_dir(gx_root) / "validations", ".html")):
        for name, _, folder in _run_dirs(base, suffix):
            if name in names and folder.exists():
                shutil.rmtree(folder)
                parent = folder.parent
                while parent != base and not any(parent.iterdir()):
                    parent.rmdir()
                    parent = parent.parent


def prune(gx_root: Path, keep: int) -> list[str]:
    """Keep the ``keep`` runs validated last (by their newest run time); delete the others'
    results and pages. Returns the run names removed, oldest first."""
    runs = sorted(validation_runs(gx_root).items(), key=lambda kv: (kv[1], kv[0]),
                  reverse=True)
    gone = [name for name, _ in runs[keep:]][::-1]
    remove_runs(gx_root, gone)
    return gone
