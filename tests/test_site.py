"""The rendered book in a real browser: build the site, serve it on localhost, open every page in headless Chromium.

Checked on every page (1280x900): no broken image, every internal link (and its #fragment) resolves, every formula is
rendered by MathJax (no raw TeX left), no local file is missing, and nothing the page needs comes from the network
(requests to other hosts are blocked and listed); the <title> says nothing twice; chapters, figures and display
formulas carry numbers; no ipywidgets view is left to render as an empty box (site_pages.py puts a note or the
progress bar's last line in its place); every image of a Markdown page has an alt text that describes it. Notebook
pages carry a Colab button for their own notebook in the repository of _config.yml. Citations and bibliography agree:
each "[Goodfellow et al., 2014]" links to the entry labelled "Goodfellow et al., 2014".

At 390x844 with touch (a phone): the menu button opens the navigation, the contents button the page outline, no page
of the back matter scrolls sideways, and the widget notes show. At 1280 px: one search box and no empty header bar.

Nothing cut off at 1280 px, and nothing too heavy (printed as tables and saved to _build/site_report.json): no display
formula and no text output is wider than the text column; at most 5 % of a page's code cells scroll sideways; every
page, its HTML plus the images it shows, weighs at most 1.2 MB; every image, notebook figures included, has an alt
text that describes it (a figure's comes from its cell's metadata, mystnb.image.alt).

"Explore the generator in your browser": the generators run and draw new images when a slider moves; every image
equals onnxruntime's for the same latent; the first images appear after at most 3 MB on the wire (served with gzip, as
static hosts do), before any other model is fetched; the walk's model loads when the reader scrolls to it, the
Fashion-MNIST ones when chosen.

The Chinese edition (scripts/i18n.py, built into zh/ of the same site) gets the same checks on every page, except
the count of glossary links; every English page has its Chinese twin, and the language button in the header leads
from one to the other and back, at the same section, on a desktop and on a phone.

The whole-book PDF: scripts/build_pdf.py prints the single-page build; it has more than 50 pages, each chapter as a
bookmark, and it is copied into the site, where the intro links it.

Needs Debian's Chromium (`apt-get install chromium`; .ci/run installs it). Without it the test is skipped with the
reason, except where CONDGAN_REQUIRE_BROWSER=1 (set by .ci/run), where a missing browser is a failure.
Set CONDGAN_SITE_DIR to a built `_build/html` to test that site instead of building one (run scripts/build_pdf.py
first: the intro links book.pdf). Screenshots go to _build/screenshots/.
"""
from __future__ import annotations

import functools
import gzip
import html
import http.server
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import numpy as np
import onnxruntime as ort
from PIL import Image
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
SCREENSHOTS = ROOT / "_build" / "screenshots"
REPORT = ROOT / "_build" / "site_report.json"
EXPLORE = ROOT / "book" / "_static" / "explore"
SCREENSHOT_PAGES = {"book/intro.html": "intro.png", "book/conditional.html": "conditional.png",
                    "book/explore.html": "explore.png", "book/article_errors.html": "article_errors.png",
                    "book/glossary.html": "glossary.png", "book/bibliography.html": "bibliography.png",
                    "book/gan_game.html": "gan_game.png"}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Other hosts a page may ask for. They are blocked in the test, and the pages must pass every check without them:
# an icon stylesheet that matplotlib's animation player links (its buttons draw without it). Anything else fails the
# test. (The ipywidgets manager from cdn.jsdelivr.net and require.js from cdnjs.cloudflare.com are gone: site_pages.py
# replaces widget views in the static pages.)
OPTIONAL_HOSTS = {"maxcdn.bootstrapcdn.com"}
# sphinx-thebe 0.3 writes its inline configuration script twice into every page; the second copy's `const` fails
# and changes nothing (the first copy already set the same values). Any other script error fails the test.
KNOWN_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)
CHINESE = "zh/"                  # the Chinese edition's folder in the site (scripts/i18n.py)
PAGE_BUDGET = 1_200_000          # bytes: a page's HTML plus the images it shows
EXPLORE_FIRST_IMAGE_BUDGET = 3_000_000   # bytes on the wire until the explore page's first image is drawn
PDF_SECONDS = 60                 # scripts/build_pdf.py: single-page build plus printing
# files a static host compresses (GitHub Pages and most others gzip text); images, fonts and models go as they are
GZIPPED = {".html", ".js", ".css", ".json", ".svg", ".txt", ".map", ".xml", ".ipynb"}


def _require(what: str, reason: str):
    if os.environ.get("CONDGAN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{what} is required here (CONDGAN_REQUIRE_BROWSER=1): {reason}")
    pytest.skip(f"{what} not available: {reason}")


def _chromium() -> str:
    path = os.environ.get("CONDGAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        _require("Chromium", "install Debian's package with `apt-get install -y chromium`")
    return path


def report(key: str, value) -> None:
    """Add ``value`` under ``key`` to _build/site_report.json (kept across the tests of one run)."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    data = {}
    if REPORT.exists():
        try:
            data = json.loads(REPORT.read_text())
        except ValueError:
            data = {}
    data[key] = value
    REPORT.write_text(json.dumps(data, indent=1, ensure_ascii=False))


def table(title: str, header: list[str], rows: list[list]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([title, line(header), *map(line, rows)])


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    if os.environ.get("CONDGAN_SITE_DIR"):
        return Path(os.environ["CONDGAN_SITE_DIR"])
    out = tmp_path_factory.mktemp("site")
    site = out / "_build" / "html"
    # the Chinese edition beside it, as the README's build command places it (scripts/i18n.py); the two builds are
    # independent, so they run side by side
    chinese = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "i18n.py"), "build", "--html", str(site / "zh"),
                                "--sources", str(out / "zh_src")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jb), "build", "-n", "--keep-going", "--path-output", str(out), str(ROOT)],
                            capture_output=True, text=True)
    log = chinese.communicate()[0]
    assert result.returncode == 0, f"the book did not build:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert chinese.returncode == 0, f"the Chinese book did not build:\n{log[-3000:]}"
    return site


@pytest.fixture(scope="module")
def book_pdf(site_dir, tmp_path_factory) -> dict:
    """scripts/build_pdf.py, as the README runs it, with the PDF copied into the site (the intro links it)."""
    _chromium()
    if os.environ.get("CONDGAN_SITE_DIR"):
        pdf = site_dir / "book.pdf"
        assert pdf.exists(), f"{pdf} is missing: run `python scripts/build_pdf.py --html-dir {site_dir}`"
        return {"path": pdf, "seconds": None, "log": ""}
    out = tmp_path_factory.mktemp("pdf")
    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_pdf.py"), "--build-dir", str(out),
                             "--out", str(out / "book.pdf"), "--html-dir", str(site_dir)],
                            capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    assert result.returncode == 0, f"build_pdf.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return {"path": out / "book.pdf", "seconds": seconds, "log": result.stdout.strip()}


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files as a web host serves them: text compressed with gzip when the browser accepts it."""
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".mjs": "text/javascript", ".onnx": "application/octet-stream"}

    def send_head(self):
        path = self.translate_path(self.path)
        if (os.path.isfile(path) and Path(path).suffix in GZIPPED
                and "gzip" in self.headers.get("Accept-Encoding", "")):
            body = _gzipped(path, os.stat(path).st_mtime_ns)
            self.send_response(200)
            self.send_header("Content-Type", self.guess_type(path))
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)
        return super().send_head()

    def log_message(self, *args):
        pass


@functools.lru_cache(maxsize=None)
def _gzipped(path: str, mtime: int) -> bytes:
    return gzip.compress(Path(path).read_bytes(), compresslevel=6, mtime=0)


@pytest.fixture(scope="module")
def server(site_dir):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site_dir)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require("Python playwright", "pip install -r requirements.txt")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def new_page(browser, server, device: dict):
    """A page (in a fresh context: cold cache) whose requests to other hosts are blocked (and recorded), and whose
    failed local requests and script errors are recorded."""
    context = browser.new_context(**device)
    page = context.new_page()
    page.external, page.missing, page.errors = [], [], []

    def route(r):
        if r.request.url.startswith(server):
            r.continue_()
        else:
            page.external.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page.on("response", lambda resp: resp.status >= 400 and resp.url.startswith(server)
            and page.missing.append(f"{resp.status} {resp.url}"))
    page.on("pageerror", lambda exc: str(exc) not in KNOWN_ERRORS and page.errors.append(str(exc)))
    return context, page


@pytest.fixture
def page(browser, server):
    context, page = new_page(browser, server, DESKTOP)
    yield page
    context.close()


@pytest.fixture
def phone(browser, server):
    context, page = new_page(browser, server, PHONE)
    yield page
    context.close()


def site_pages(site_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(site_dir)) for p in site_dir.rglob("*.html")
                  if not {"_static", "_sources", "_images"} & set(p.relative_to(site_dir).parts))


def english(rel: str) -> str:
    """A page of the Chinese edition (zh/...) is built from the same source as the English page."""
    return rel.removeprefix(CHINESE)


def source_of(rel: str) -> Path | None:
    """The book's source file of a built page, or None (search, genindex, index)."""
    for suffix in (".ipynb", ".md"):
        path = ROOT / Path(english(rel)).with_suffix(suffix)
        if path.exists():
            return path
    return None


def has_id(file: Path, fragment: str) -> bool:
    text = file.read_text(errors="replace")
    return re.search(rf'\b(id|name)="{re.escape(html.escape(fragment, quote=True))}"', text) is not None


def expected_colab_url(notebook: str) -> str:
    repo, colab = CONFIG["repository"], CONFIG["launch_buttons"]["colab_url"]
    owner_name = urlparse(repo["url"]).path.strip("/")
    prefix = repo.get("path_to_book", "").strip("/")
    path = f"{prefix}/{notebook}" if prefix else notebook
    return f"{colab}/github/{owner_name}/blob/{repo['branch']}/{path}"


def interactive_widget_views(notebook: Path) -> int:
    """Output cells of a notebook that show ipywidgets controls other than tqdm progress bars."""
    nb = json.loads(notebook.read_text())
    state = nb.get("metadata", {}).get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    models = state.get("state", {})
    cells = 0
    for cell in nb["cells"]:
        views = [o["data"]["application/vnd.jupyter.widget-view+json"].get("model_id")
                 for o in cell.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        bars = [m for m in views if any(models.get(c.replace("IPY_MODEL_", ""), {}).get("model_name", "").endswith(
            "ProgressModel") for c in models.get(m, {}).get("state", {}).get("children", []))]
        cells += len(views) > len(bars)
    return cells


PAGE_CHECKS = """() => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.currentSrc || i.src);
  const math = [...document.querySelectorAll('.math')];
  const unrendered = math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 60));
  const main = document.querySelector('main') || document.body;
  const body = main.cloneNode(true);
  body.querySelectorAll('pre, code, script, style, textarea').forEach(e => e.remove());
  const text = body.textContent;
  const rawTex = ['$$', '\\\\(', '\\\\[', '\\\\begin{'].filter(s => text.includes(s));
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  const fileName = /(^|\\/)[^\\/\\s]+\\.(png|jpe?g|gif|svg|webp)$/i;
  const images = [...main.querySelectorAll('img')].map(i => ({alt: (i.getAttribute('alt') || '').trim(),
                                                            src: i.getAttribute('src') || ''}));
  const badAlt = images.filter(i => !i.alt || fileName.test(i.alt) || i.src.endsWith(i.alt)).map(i => i.src.slice(0, 80));
  const h1 = main.querySelector('section > h1');      // the page's title (not the hidden print header)
  const notes = [...document.querySelectorAll('.cg-widget-note')];
  // ipywidgets views left in the page, and output areas that render as nothing
  const widgetViews = document.querySelectorAll('script[type^="application/vnd.jupyter.widget"]').length;
  const emptyOutputs = [...document.querySelectorAll('.cell_output')].filter(o => o.getBoundingClientRect().height < 2
      && !o.closest('details:not([open])') && !o.closest('.toggle-hidden')).length;
  // citations: the text of each link into the bibliography, and the label of the entry it leads to
  const citations = [...main.querySelectorAll('a[href*="bibliography.html#"]')].map(a => ({text: a.textContent.trim(),
      href: a.getAttribute('href')}));
  // figures: natural and shown width, and whether each is a link to its own file
  const figures = [...main.querySelectorAll('.cell_output img, figure img')].filter(i => !i.closest('.cg-player'))
      .map(i => { const a = i.closest('a'); return {src: i.currentSrc || i.src, natural: i.naturalWidth,
                  shown: i.getBoundingClientRect().width, linked: !!a && a.href === (i.currentSrc || i.src)}; });
  const terms = [...main.querySelectorAll('a.cg-term')].map(a => a.getAttribute('href'));
  return {broken, mathCount: math.length, figures, terms, rendered: document.querySelectorAll('mjx-container').length,
          unrendered, rawTex, links, text, title: document.title, images: images.length, badAlt,
          h1Number: h1 && h1.querySelector('.section-number') ? h1.querySelector('.section-number').textContent : null,
          displayMath: document.querySelectorAll('div.math').length, eqno: document.querySelectorAll('.eqno').length,
          figNumbers: [...main.querySelectorAll('figcaption .caption-number')].map(e => e.textContent.trim()),
          notes: notes.length, notesShown: notes.filter(n => n.getBoundingClientRect().height > 10
              && n.querySelector('a[href$="explore.html"]')).length,
          widgetViews, emptyOutputs, citations};
}"""

# Blocks wider than the text column at this viewport: display formulas, text outputs, code cells.
OVERFLOW = """() => {
  const wide = (box, content) => content.scrollWidth > box.clientWidth + 1;
  const math = [...document.querySelectorAll('div.math')].filter(m => {
    const c = m.querySelector('mjx-container'); return c && (wide(m, c) || c.scrollWidth > c.clientWidth + 1); });
  const outputs = [...document.querySelectorAll('.cell_output pre')].filter(p => wide(p, p));
  const code = [...document.querySelectorAll('.cell_input pre')].filter(p => wide(p, p));
  return {math: [math.length, document.querySelectorAll('div.math').length],
          outputs: [outputs.length, document.querySelectorAll('.cell_output pre').length],
          code: [code.length, document.querySelectorAll('.cell_input pre').length],
          page: document.documentElement.scrollWidth - window.innerWidth};
}"""


MIN_SHOWN_SCALE = 0.8   # no figure shown at less than 80 % of its natural width
MIN_TEXT_PT = 9         # no text in a figure under 9 pt as shown (1 pt = 4/3 CSS px)


def figure_problems(rel: str, figures: list[dict], server: str, site_dir: Path, problems: list[str]) -> list:
    """Check each figure of a page: shown at >= 80 % of its width, text >= 9 pt as shown (from the ``min_font_px``
    that ``condgan_lib.viz.compact_png`` records in the PNG), and a link to its full-size file. Returns the page's
    row of the report: figures, smallest scale, smallest text in pt, figures without a link."""
    scales, fonts, unlinked = [], [], 0
    figures = [f for f in figures if not f["src"].startswith("data:")]
    for fig in figures:
        name = Path(unquote(urlparse(fig["src"]).path)).name
        if not fig["natural"] or fig["src"].startswith("data:"):   # animation frames: the player's business
            continue
        scale = fig["shown"] / fig["natural"]
        if name.endswith(".svg"):   # vector drawings scale without loss
            continue
        scales.append(scale)
        if scale < MIN_SHOWN_SCALE:
            problems.append(f"{rel}: {name} ({fig['natural']} px wide) shown at {scale:.0%} of its width: draw it "
                            f"narrower or on two rows")
        if not fig["linked"]:
            unlinked += 1
            problems.append(f"{rel}: {name} is not a link to its full-size file")
        path = site_dir / unquote(urlparse(fig["src"]).path).lstrip("/") if fig["src"].startswith(server) else None
        if path is not None and path.suffix == ".png" and path.is_file():
            with Image.open(path) as image:
                font_px = image.text.get("min_font_px") if hasattr(image, "text") else None
            if font_px is not None:
                pt = float(font_px) * min(scale, 1.0) * 0.75
                fonts.append(pt)
                if pt < MIN_TEXT_PT - 0.05:
                    problems.append(f"{rel}: {name} has {pt:.1f} pt text as shown (at least {MIN_TEXT_PT} pt)")
    return [len(figures), f"{min(scales):.2f}" if scales else "-", f"{min(fonts):.1f}" if fonts else "-", unlinked]


def open_page(page, url):
    page.goto(url, wait_until="load")
    if page.evaluate("() => document.querySelectorAll('.math').length") > 0:
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
        page.evaluate("() => MathJax.startup.promise.then(() => true)")


def test_every_page_in_a_real_browser(page, server, site_dir, book_pdf):
    pages = site_pages(site_dir)
    assert {"book/intro.html", "book/conditional.html", "book/explore.html"} <= set(pages), pages
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems, links, math_pages, overflow, citations, alt_report, figure_report = [], {}, [], {}, [], {}, {}
    for rel in pages:
        refresh = re.search(r'http-equiv="refresh" content="\d+;\s*url=([^"]+)"', (site_dir / rel).read_text(), re.I)
        if refresh:   # index.html only forwards to the first page, which is checked in its own right
            page.goto(server + rel)
            page.wait_for_url(re.compile(re.escape(refresh.group(1).split("#")[0]) + "$"))
            continue
        if rel == "book/explore.html":   # its generator starts on load; test_generator_runs_in_the_page checks it
            page.goto(server + rel, wait_until="load")
            page.wait_for_function("() => document.getElementById('cg-explore').dataset.state !== 'loading'",
                                   timeout=60_000)
            page.evaluate("() => MathJax.startup.promise.then(() => true)")
        else:
            open_page(page, server + rel)
        found = page.evaluate(PAGE_CHECKS)
        source = source_of(rel)
        problems += [f"{rel}: broken image {src}" for src in found["broken"]]
        problems += [f"{rel}: formula not rendered: {t!r}" for t in found["unrendered"]]
        problems += [f"{rel}: raw TeX {s!r} left in the text" for s in found["rawTex"]]
        if found["mathCount"]:
            math_pages.append(rel)
            if not found["rendered"]:
                problems.append(f"{rel}: {found['mathCount']} formulas, no MathJax output")
        for href in found["links"]:
            links.setdefault(href, rel)
        # the <title> names the page and the book once each
        parts = [p.strip() for p in found["title"].split("\u2014")]
        if len(set(parts)) != len(parts) or not all(parts):
            problems.append(f"{rel}: <title> repeats itself: {found['title']!r}")
        # images: every image has an alt text that is not a file name (a notebook figure gets it from its cell's
        # metadata, mystnb.image.alt)
        if source is not None:
            alt_report[rel] = [found["images"], len(found["badAlt"])]
            if found["badAlt"]:
                problems.append(f"{rel}: images without a describing alt text: {found['badAlt']}")
        # numbering: chapters in the numbered parts of _toc.yml, figures with a caption, display formulas
        if source is not None and source.suffix == ".ipynb" and not found["h1Number"]:
            problems.append(f"{rel}: the chapter title has no number")
        if source is not None and found["displayMath"] and found["eqno"] < found["displayMath"]:
            problems.append(f"{rel}: {found['displayMath'] - found['eqno']} of {found['displayMath']} display "
                            f"formulas have no number")
        # widgets: no ipywidgets view left to render as an empty box; the note shows where a chapter had controls
        if found["widgetViews"]:
            problems.append(f"{rel}: {found['widgetViews']} ipywidgets scripts left in the page")
        if found["emptyOutputs"]:
            problems.append(f"{rel}: {found['emptyOutputs']} output areas render as nothing")
        if source is not None and source.suffix == ".ipynb":
            wanted = interactive_widget_views(source)
            if found["notes"] != wanted or found["notesShown"] != wanted:
                problems.append(f"{rel}: {wanted} cells with interactive controls, {found['notes']} notes "
                                f"({found['notesShown']} shown with a link to the explore page)")
        citations += [(rel, c["text"], c["href"]) for c in found["citations"]]
        figure_report[rel] = figure_problems(rel, found["figures"], server, site_dir, problems)
        # glossary: the first use of each term in a chapter links to its entry, and only the first (the Chinese
        # pages link the English terms they keep in parentheses, so not necessarily five)
        if source is not None and source.suffix == ".ipynb" and not rel.startswith(CHINESE):
            if len(found["terms"]) < 5:
                problems.append(f"{rel}: {len(found['terms'])} glossary terms linked (expected the first use of each)")
            if len(set(found["terms"])) != len(found["terms"]):
                problems.append(f"{rel}: a glossary term linked more than once: {sorted(found['terms'])}")
        overflow[rel] = page.evaluate(OVERFLOW)
        notebook = Path(english(rel)).with_suffix(".ipynb")
        colab = page.eval_on_selector_all('a[href^="https://colab.research.google.com"]', "els => els.map(e => e.href)")
        if (ROOT / notebook).exists():
            if expected_colab_url(str(notebook)) not in colab:
                problems.append(f"{rel}: no Colab button for {expected_colab_url(str(notebook))} (found {colab})")
        elif colab:
            problems.append(f"{rel}: a Colab button on a page that is not a notebook: {colab}")
        if english(rel) == "book/article_errors.html" and re.search(r":\s*Correction\.", found["text"]):
            problems.append(f"{rel}: a literal ': Correction.' (a definition-list term that spans two source lines)")
        if english(rel) == "book/intro.html" and not any(re.match(r"(Fig\.|图) ?1", n) for n in found["figNumbers"]):
            problems.append(f"{rel}: the unCLIP figure has no number ({found['figNumbers']})")
        if rel in SCREENSHOT_PAGES:
            page.screenshot(path=str(SCREENSHOTS / SCREENSHOT_PAGES[rel]))
    # every internal link resolves to a file of the site, and its #fragment to an element of that page
    for href, rel in links.items():
        if not href.startswith(server):
            continue
        url, fragment = urldefrag(href)
        target = site_dir / unquote(urlparse(url).path.lstrip("/"))
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            problems.append(f"{rel}: link to a missing page {href}")
        elif fragment and target.suffix == ".html" and not has_id(target, unquote(fragment)):
            problems.append(f"{rel}: link to a missing anchor {href}")
    # each author-year citation leads to the bibliography entry whose label reads the same
    labels = {}   # per edition: the English pages cite book/bibliography.html, the Chinese ones zh/book/...
    for edition in ("", CHINESE):
        bibliography = (site_dir / edition / "book" / "bibliography.html").read_text()
        labels[edition] = {m.group(1): re.sub(r"<[^>]+>", "", m.group(2)) for m in re.finditer(
            r'<div class="citation" id="([^"]+)"[^>]*>\s*<span class="label"><span class="fn-bracket">\[</span>(.*?)'
            r'<span class="fn-bracket">\]</span>', bibliography, re.S)}
        assert labels[edition], f"no labelled entry in the {edition or 'English '}bibliography"
    for rel, text, href in citations:
        text = re.sub(r"\s+", " ", text)                  # "de\xa0Vries" in the text, "de Vries" in the label
        edition = CHINESE if rel.startswith(CHINESE) else ""
        label = re.sub(r"\s+", " ", html.unescape(labels[edition].get(urldefrag(href)[1], "")))
        if not re.fullmatch(re.escape(text) + "[a-z]?", label):
            problems.append(f"{rel}: the citation [{text}] leads to the bibliography entry [{label}]")
    problems += [f"missing file: {m}" for m in page.missing]
    problems += [f"JavaScript error: {e}" for e in page.errors]
    unexpected = sorted({u for u in page.external if urlparse(u).hostname not in OPTIONAL_HOSTS})
    problems += [f"request to the network: {u}" for u in unexpected]

    rows = [[rel, f"{o['math'][0]}/{o['math'][1]}", f"{o['outputs'][0]}/{o['outputs'][1]}",
             f"{o['code'][0]}/{o['code'][1]}", o["page"]] for rel, o in overflow.items()]
    print("\n" + table("Blocks wider than the column at 1280x900 (wide/all):",
                       ["page", "display math", "text outputs", "code cells", "page scroll px"], rows))
    print(table("Images whose alt text is a file name (none allowed):",
                ["page", "images", "alt = file name"], [[k, *v] for k, v in alt_report.items()]))
    print(table("Figures at 1280x900 (smallest shown width / natural width, smallest text as shown, in pt):",
                ["page", "figures", "smallest scale", "smallest text pt", "not linked"],
                [[k, *v] for k, v in figure_report.items() if v[0]]))
    report("figures_1280", figure_report)
    report("overflow_1280", overflow)
    report("image_alt", alt_report)
    problems += [f"{rel}: the page scrolls sideways by {o['page']} px at 1280 px" for rel, o in overflow.items()
                 if o["page"] > 0]
    problems += [f"{rel}: {o['math'][0]} display formulas wider than the column (break them with aligned)"
                 for rel, o in overflow.items() if o["math"][0]]
    problems += [f"{rel}: {o['outputs'][0]} text outputs wider than the column (print at most 100 characters a line)"
                 for rel, o in overflow.items() if o["outputs"][0]]
    problems += [f"{rel}: {o['code'][0]} of {o['code'][1]} code cells scroll sideways (format them to 88 columns)"
                 for rel, o in overflow.items() if o["code"][0] > 0.05 * o["code"][1]]
    assert not problems, "\n".join(problems)
    assert len(math_pages) >= 4, f"formulas found on {math_pages} only"
    assert citations, "no citation found"
    print(f"checked {len(pages)} pages: {', '.join(pages)}; formulas rendered on {len(math_pages)}; "
          f"{sum(h.startswith(server) for h in links)} internal links; {len(citations)} citations")


def test_language_switch_both_ways(browser, server, site_dir):
    """Every page of the book has its twin in the other edition, and the button in the header leads there, at the
    same section, on a desktop and on a phone; the Chinese page says it is Chinese, and its headings are."""
    english_pages = [p for p in site_pages(site_dir) if not p.startswith(CHINESE) and source_of(p)]
    assert english_pages and not [p for p in english_pages if not (site_dir / CHINESE / p).exists()]
    section = "book/dcgan.html#bug-8-a-log-that-no-gan-can-print"
    for name, device in (("desktop", DESKTOP), ("phone", PHONE)):
        context, page = new_page(browser, server, device)
        try:
            page.goto(server + section, wait_until="load")
            button = page.locator("a.cg-language")
            assert button.count() == 1 and button.is_visible(), f"{name}: no language button on the English page"
            assert button.inner_text().strip() == "中文版"
            button.click()
            page.wait_for_url(server + CHINESE + section)
            assert page.evaluate("document.documentElement.lang").startswith("zh")
            heading = page.evaluate("document.getElementById(location.hash.slice(1)).querySelector('h2, h3').textContent")
            assert re.search(r"[\u4e00-\u9fff]", heading), f"{name}: the Chinese page's heading reads {heading!r}"
            if name == "phone":
                page.screenshot(path=str(SCREENSHOTS / "zh_phone.png"))
            else:
                page.screenshot(path=str(SCREENSHOTS / "zh_dcgan.png"))
            page.locator("a.cg-language").click()
            page.wait_for_url(server + section)
            assert page.evaluate("document.documentElement.lang").startswith("en")
            assert not page.errors and not page.missing, (page.errors, page.missing)
        finally:
            context.close()


def test_navigation_on_a_phone_and_the_desktop_header(browser, server, site_dir):
    problems = []
    context, page = new_page(browser, server, PHONE)
    try:
        open_page(page, server + "book/conditional.html")
        toggles = page.locator(".primary-toggle:visible")
        assert toggles.count() == 1, f"{toggles.count()} visible menu buttons"
        toggles.first.tap()
        page.wait_for_timeout(300)
        nav = page.locator("#pst-primary-sidebar-modal")
        if not nav.evaluate("d => d.open") or not page.locator("#pst-primary-sidebar-modal a[href$='gan_game.html']"
                                                               ).first.is_visible():
            problems.append("at 390 px the menu button does not open the navigation")
        page.screenshot(path=str(SCREENSHOTS / "phone_navigation.png"))
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)
        page.locator(".secondary-toggle:visible").first.tap()
        page.wait_for_timeout(300)
        outline = page.locator("#pst-secondary-sidebar-modal")
        if not outline.evaluate("d => d.open") or not page.locator(
                "#pst-secondary-sidebar-modal a[href^='#']:visible").count():
            problems.append("at 390 px the contents button does not open the page outline")
        page.screenshot(path=str(SCREENSHOTS / "phone_outline.png"))
        page.keyboard.press("Escape")
        # the back matter and the intro fit the phone's width; notes stand in for widgets there too
        widths = {}
        for rel in ["book/intro.html", "book/article_errors.html", "book/glossary.html", "book/bibliography.html",
                    "book/gan_game.html"]:
            open_page(page, server + rel)
            widths[rel] = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            if rel.endswith("gan_game.html") and not page.locator(".cg-widget-note:visible").count():
                problems.append(f"{rel}: the widget note is not shown on a phone")
            elif not rel.endswith("gan_game.html") and widths[rel] > 0:
                problems.append(f"{rel}: scrolls sideways by {widths[rel]} px on a phone")
        page.screenshot(path=str(SCREENSHOTS / "phone_gan_game.png"))
        print(f"sideways scroll at 390 px: {widths}")
        problems += [f"phone: JavaScript error: {e}" for e in page.errors]
    finally:
        context.close()

    context, page = new_page(browser, server, DESKTOP)
    try:
        open_page(page, server + "book/conditional.html")
        header = page.evaluate("""() => { const h = document.querySelector('header.bd-header');
            return h ? h.getBoundingClientRect().height : 0; }""")
        searches = page.locator(".search-button-field:visible, .search-button:visible, form.bd-search:visible").count()
        if header > 0:
            problems.append(f"at 1280 px an empty header bar {header} px high")
        if searches != 1:
            problems.append(f"at 1280 px {searches} search boxes")
        colab = page.eval_on_selector_all('a[href^="https://colab.research.google.com"]', "els => els.length")
        if not colab:
            problems.append("the Colab launch button is gone")
        page.locator(".primary-toggle:visible").first.click()
        page.wait_for_timeout(400)
        if page.locator(".bd-sidebar-primary").first.is_visible():
            problems.append("at 1280 px the menu button does not collapse the sidebar")
    finally:
        context.close()
    assert not problems, "\n".join(problems)


def test_page_weights(site_dir):
    """Each page's HTML plus the images it shows (inline ones, animations included, are in the HTML)."""
    rows, problems, weights = [], [], {}
    for rel in site_pages(site_dir):
        source = source_of(rel)
        if source is None:
            continue
        text = (site_dir / rel).read_text(errors="replace")
        images = set(re.findall(r'<img[^>]+src="(?!data:)([^"]+)"', text))
        image_bytes = sum((site_dir / rel).parent.joinpath(unquote(src)).resolve().stat().st_size
                          for src in images if (site_dir / rel).parent.joinpath(unquote(src)).resolve().is_file())
        html_bytes = (site_dir / rel).stat().st_size
        total = html_bytes + image_bytes
        weights[rel] = {"html": html_bytes, "images": image_bytes, "total": total,
                        "html_gzip": len(gzip.compress(text.encode(), 6))}
        rows.append([rel, f"{html_bytes / 1e6:.2f}", f"{image_bytes / 1e6:.2f}", f"{total / 1e6:.2f}",
                     f"{weights[rel]['html_gzip'] / 1e6:.2f}", "yes" if total <= PAGE_BUDGET else "NO"])
        if total > PAGE_BUDGET:
            problems.append(f"{rel}: {total / 1e6:.2f} MB, over {PAGE_BUDGET / 1e6} MB")
    print("\n" + table(f"Page weight in MB (HTML + images it shows; budget {PAGE_BUDGET / 1e6} MB):",
                       ["page", "html", "images", "total", "html gzip", "in budget"], rows))
    report("page_weight", weights)
    assert not problems, "\n".join(problems)


CANVAS_PIXELS = """root => [...document.querySelectorAll(`#${root} canvas[data-slot]`)].map(
  c => Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0)))"""


def drawn(page, root: str = "cg-explore", **expected):
    """Wait until the widget ``root`` has drawn the images for the given control values; its images' grey levels."""
    checks = " && ".join(f"s[{k!r}] === {v!r}" for k, v in expected.items())
    page.wait_for_function(f"() => {{ const r = document.getElementById({root!r}); "
                           f"if (r.dataset.state === 'error') return true; const s = JSON.parse(r.dataset.drawn || '{{}}'); "
                           f"return {checks}; }}", timeout=30_000)
    assert page.get_attribute(f"#{root}", "data-state") == "ready", page.text_content(f"#{root} [role=status]")
    return np.array(page.evaluate(CANVAS_PIXELS, root), dtype=float)     # [slots, 784], 0..255


def same(a, b) -> bool:
    return bool(np.abs(a - b).max() <= 1)


def js_latent(seed: int, dim: int = 64) -> np.ndarray:
    """The page's latent for ``seed`` (explore.js: mulberry32 and Box-Muller), computed here in Python."""
    a = (seed + 1) & 0xFFFFFFFF

    def rand() -> float:
        nonlocal a
        a = (a + 0x6D2B79F5) & 0xFFFFFFFF
        t = ((a ^ (a >> 15)) * (a | 1)) & 0xFFFFFFFF
        t ^= (t + ((t ^ (t >> 7)) * (t | 61))) & 0xFFFFFFFF
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296

    def gaussian() -> float:
        u = 0.0
        while u == 0.0:
            u = rand()
        return math.sqrt(-2 * math.log(u)) * math.cos(2 * math.pi * rand())

    return np.array([gaussian() for _ in range(dim)], dtype=np.float32)


def lerp(a, b, t):
    return ((1 - t) * a.astype(np.float64) + t * b.astype(np.float64)).astype(np.float32)


def slerp(a, b, t):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    omega = math.acos(min(1.0, max(-1.0, float(a64 @ b64 / math.sqrt((a64 @ a64) * (b64 @ b64))))))
    if math.sin(omega) < 1e-6:
        return lerp(a, b, t)
    return ((math.sin((1 - t) * omega) * a64 + math.sin(t * omega) * b64) / math.sin(omega)).astype(np.float32)


def onnx_images(model: str, z, class_weights=None) -> np.ndarray:
    """onnxruntime's images for these inputs, as the page draws them: grey levels 0..255, one row per image."""
    feeds = {"z": np.asarray(z, dtype=np.float32)}
    if class_weights is not None:
        feeds["class_weights"] = np.asarray(class_weights, dtype=np.float32)
    session = ort.InferenceSession(str(EXPLORE / f"{model}.onnx"), providers=["CPUExecutionProvider"])
    (images,) = session.run(None, feeds)
    return np.round(255 * np.clip(images.reshape(len(feeds["z"]), -1), 0, 1))


def conditional_rows(cls=3, seed=0, to_class=8, alpha=0.5, to_seed=1, beta=0.5):
    """explore.js conditionalBatch with truncation off: the sample, the class walk, the seed walk, the ten classes."""
    za, zb, eye = js_latent(seed), js_latent(to_seed), np.eye(10, dtype=np.float32)
    walk = np.zeros(10, dtype=np.float32)
    walk[cls] += 1 - alpha
    walk[to_class] += alpha
    z = [za, za, slerp(za, zb, beta)] + [za] * 10
    w = [eye[cls], walk, eye[cls]] + [eye[j] for j in range(10)]
    return np.stack(z), np.stack(w)


def walk_rows(seed_a=11, seed_b=2, path="slerp", t=0.5):
    """explore.js walkBatch: the two ends, the point at t, then ten points on the line and ten on the circle."""
    za, zb = js_latent(seed_a), js_latent(seed_b)
    point = (lerp if path == "lerp" else slerp)(za, zb, t)
    return np.stack([za, point, zb] + [lerp(za, zb, i / 9) for i in range(10)] + [slerp(za, zb, i / 9) for i in range(10)])


def transfer_meter(page):
    """Bytes on the wire (compressed bodies plus headers) and the URLs fetched, from Chromium's network events."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    meter = {"wire": 0, "body": 0, "urls": {}}

    def response(event):
        meter["urls"][event["requestId"]] = event["response"]["url"]

    def received(event):
        meter["body"] += event["dataLength"]

    def finished(event):
        meter["wire"] += event["encodedDataLength"]

    cdp.on("Network.responseReceived", response)
    cdp.on("Network.dataReceived", received)
    cdp.on("Network.loadingFinished", finished)
    return meter


def first_image_weight(page, server) -> dict:
    """Open the explore page and wait for its first images; what was transferred until then."""
    meter = transfer_meter(page)
    page.goto(server + "book/explore.html", wait_until="commit")
    page.wait_for_function("() => { const r = document.getElementById('cg-explore'); "
                           "return r && ['ready', 'error'].includes(r.dataset.state); }", timeout=60_000)
    assert page.get_attribute("#cg-explore", "data-state") == "ready", page.text_content("#cg-status")
    page.wait_for_timeout(100)        # let the last network events arrive
    models = sorted(Path(urlparse(u).path).name for u in meter["urls"].values() if u.endswith(".onnx"))
    return {"wire": meter["wire"], "body": meter["body"], "models": models, "meter": meter}


def test_generator_runs_in_the_page(page, server):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    weight = first_image_weight(page, server)
    assert weight["models"] == ["mnist-projection.onnx"], f"models fetched before the first image: {weight['models']}"
    assert weight["wire"] <= EXPLORE_FIRST_IMAGE_BUDGET, (
        f"{weight['wire'] / 1e6:.2f} MB transferred before the first image (budget {EXPLORE_FIRST_IMAGE_BUDGET / 1e6})")
    meter = weight["meter"]
    page.evaluate("() => MathJax.startup.promise.then(() => true)")

    first = drawn(page, model="mnist-projection", **{"class": "3"})
    assert first.shape == (13, 784)
    assert (first.std(axis=1) > 20).all(), "a blank image"        # digits, not flat grey
    assert same(first[0], first[3 + 3]), "the sample differs from class 3 of the sweep row"
    # the page runs the real generator: every image equals onnxruntime's output here for the same latents and classes
    expected = onnx_images("mnist-projection", *conditional_rows())
    assert np.abs(first - expected).max() <= 2, "the page's images differ from the ONNX generator's"
    assert page.get_attribute("#cg-walk", "data-state") == "waiting", "the walk loaded before the reader got there"

    page.focus("#cg-class")
    for _ in range(4):
        page.keyboard.press("ArrowRight")                 # move the class slider 3 -> 7, as a reader would
    moved = drawn(page, **{"class": "7"})
    assert not same(moved[0], first[0]) and moved[0].std() > 20
    assert same(moved[0], moved[3 + 7])
    assert not same(moved[1], first[1])                   # the class walk starts from the new class

    page.focus("#cg-alpha")
    page.keyboard.press("End")                            # alpha = 1: the class walk arrives at "to class" (8)
    walked = drawn(page, alpha="1")
    assert same(walked[1], walked[3 + 8])

    page.select_option("#cg-model", "fashion-projection")
    fashion = drawn(page, model="fashion-projection")
    assert not same(fashion[0], walked[0]) and fashion[0].std() > 20
    assert np.abs(fashion - onnx_images("fashion-projection", *conditional_rows(cls=7, alpha=1.0))).max() <= 2

    # the DCGAN walk loads when it comes into view: both paths start at seed A and end at seed B
    page.locator("#cg-walk").scroll_into_view_if_needed()
    walk = drawn(page, "cg-walk", model="mnist-dcgan", t="0.5")
    assert walk.shape == (23, 784) and (walk[[0, 1, 2]].std(axis=1) > 20).all()
    assert np.abs(walk - onnx_images("mnist-dcgan", walk_rows())).max() <= 2, "the walk differs from onnxruntime's"
    assert same(walk[0], walk[3]) and same(walk[0], walk[13]) and same(walk[2], walk[12]) and same(walk[2], walk[22])
    page.focus("#cg-t")
    page.keyboard.press("End")                            # t = 1: the point is seed B
    end = drawn(page, "cg-walk", t="1")
    assert not same(end[1], walk[1]) and same(end[1], end[2])
    page.select_option("#cg-path", "lerp")
    page.focus("#cg-t")
    page.keyboard.press("Home")                           # t = 0 on the straight line: the point is seed A
    start = drawn(page, "cg-walk", path="lerp", t="0")
    assert same(start[1], start[0])
    fetched = sorted(Path(urlparse(u).path).name for u in meter["urls"].values() if u.endswith(".onnx"))
    assert fetched == ["fashion-projection.onnx", "mnist-dcgan.onnx", "mnist-projection.onnx"], fetched

    page.evaluate("() => { document.activeElement.blur(); window.scrollTo(0, 0); }")
    page.screenshot(path=str(SCREENSHOTS / "explore.png"), full_page=True)
    assert not page.missing and not page.errors, (page.missing, page.errors)
    assert not page.external, page.external
    explore = {"first_image_wire_bytes": weight["wire"], "first_image_body_bytes": weight["body"],
               "first_image_models": weight["models"], "session_wire_bytes": meter["wire"]}
    report("explore_desktop", explore)
    print(f"explore at 1280x900: first images after {weight['wire'] / 1e6:.2f} MB on the wire "
          f"({weight['body'] / 1e6:.2f} MB uncompressed); {meter['wire'] / 1e6:.2f} MB after every widget ran. "
          f"{page.text_content('#cg-status')} {page.text_content('#cg-walk-status')}")


def test_generator_on_a_phone(phone, server):
    weight = first_image_weight(phone, server)
    assert weight["models"] == ["mnist-projection.onnx"], weight["models"]
    assert weight["wire"] <= EXPLORE_FIRST_IMAGE_BUDGET, f"{weight['wire'] / 1e6:.2f} MB before the first image"
    first = drawn(phone, model="mnist-projection", **{"class": "3"})
    assert np.abs(first - onnx_images("mnist-projection", *conditional_rows())).max() <= 2
    phone.locator("#cg-class").tap()                      # a tap on the slider moves it and redraws
    drawn(phone, model="mnist-projection")
    width = phone.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 0, f"the explore page scrolls sideways by {width} px on a phone"
    phone.screenshot(path=str(SCREENSHOTS / "explore_phone.png"))
    assert not phone.missing and not phone.errors and not phone.external, (phone.missing, phone.errors, phone.external)
    report("explore_phone", {"first_image_wire_bytes": weight["wire"], "first_image_body_bytes": weight["body"]})
    print(f"explore at 390x844: first images after {weight['wire'] / 1e6:.2f} MB on the wire")


def pdf_outline_titles(data: bytes) -> list[str]:
    """The bookmark titles of a PDF (literal or UTF-16 hex strings after /Title)."""
    titles = []
    for m in re.finditer(rb"/Title\s*(\((?:\\.|[^\\)])*\)|<[0-9A-Fa-f\s]*>)", data, re.S):
        raw = m.group(1)
        if raw.startswith(b"<"):
            value = bytes.fromhex(re.sub(rb"\s", b"", raw[1:-1]).decode())
        else:
            value = re.sub(rb"\\([0-7]{1,3}|.)", lambda e: bytes([int(e.group(1), 8)]) if e.group(1)[:1].isdigit()
                           else {b"n": b"\n", b"r": b"\r", b"t": b"\t"}.get(e.group(1), e.group(1)), raw[1:-1], flags=re.S)
        titles.append(value[2:].decode("utf-16-be") if value.startswith(b"\xfe\xff") else value.decode("latin-1"))
    return titles


def test_whole_book_pdf(book_pdf, site_dir):
    pdf = book_pdf["path"]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-"), f"{pdf} is not a PDF"
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", data))
    titles = pdf_outline_titles(data)
    chapters = []
    for rel in (p for p in site_pages(site_dir) if not p.startswith(CHINESE)):  # the PDF is the English book
        source = source_of(rel)
        if source is not None and source.suffix == ".ipynb":
            title = re.search(r"<title>(.*?)</title>", (site_dir / rel).read_text(), re.S).group(1)
            chapters.append(html.unescape(title.split("&#8212;")[0].split("\u2014")[0]).strip())
    squeeze = lambda s: re.sub(r"\s+", "", s)     # Chromium joins a heading's wrapped lines without a space
    missing = [c for c in chapters if not any(squeeze(c) in squeeze(t) for t in titles)]
    print(f"{book_pdf['log']}\nPDF: {pages} pages, {len(data) / 1e6:.1f} MB, {len(titles)} bookmarks; built in "
          f"{book_pdf['seconds'] or 0:.0f} s")
    report("pdf", {"pages": pages, "bytes": len(data), "bookmarks": len(titles), "seconds": book_pdf["seconds"]})
    assert pages > 50, f"{pages} pages"
    assert chapters and not missing, f"chapter titles missing from the PDF's bookmarks: {missing} (have {titles[:20]})"
    assert (site_dir / "book.pdf").read_bytes() == data, "the site's book.pdf (linked from the intro) is another file"
    if book_pdf["seconds"] is not None:
        assert book_pdf["seconds"] <= PDF_SECONDS, f"build_pdf.py took {book_pdf['seconds']:.0f} s"
