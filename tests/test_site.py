"""The rendered book in a real browser: build the site, serve it on localhost, open every page in headless Chromium.

Checked on every page: no broken image, every internal link (and its #fragment) resolves, every formula is rendered
by MathJax (no raw TeX left), no local file is missing, and nothing the page needs comes from the network (requests
to other hosts are blocked and listed). Notebook pages carry a Colab button for their own notebook in the repository
of _config.yml. On "Explore the generator in your browser", the generators run and draw new images when a slider
moves, and the page's image equals onnxruntime's for the same latent. Screenshots go to _build/screenshots/.

Needs Debian's Chromium (`apt-get install chromium`; .ci/run installs it). Without it the test is skipped with the
reason, except where CONDGAN_REQUIRE_BROWSER=1 (set by .ci/run), where a missing browser is a failure.
Set CONDGAN_SITE_DIR to a built `_build/html` to test that site instead of building one.
"""
from __future__ import annotations

import functools
import html
import http.server
import math
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import numpy as np
import onnxruntime as ort
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
SCREENSHOTS = ROOT / "_build" / "screenshots"
SCREENSHOT_PAGES = {"book/intro.html": "intro.png", "book/conditional.html": "conditional.png",
                    "book/explore.html": "explore.png", "book/article_errors.html": "article_errors.png",
                    "book/glossary.html": "glossary.png"}
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Other hosts a page may ask for. They are blocked in the test, and the pages must pass every check without them:
# the ipywidgets manager (views of live-kernel controls, inert in a static page; the page "Explore the generator in
# your browser" is their kernel-free counterpart) and an icon stylesheet that matplotlib's animation player links
# (its buttons draw without it). Anything else fails the test.
OPTIONAL_HOSTS = {"cdnjs.cloudflare.com", "cdn.jsdelivr.net", "maxcdn.bootstrapcdn.com"}
# sphinx-thebe 0.3 writes its inline configuration script twice into every page; the second copy's `const` fails
# and changes nothing (the first copy already set the same values). Any other script error fails the test.
KNOWN_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)


def _require(what: str, reason: str):
    if os.environ.get("CONDGAN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{what} is required here (CONDGAN_REQUIRE_BROWSER=1): {reason}")
    pytest.skip(f"{what} not available: {reason}")


def _chromium() -> str:
    path = os.environ.get("CONDGAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        _require("Chromium", "install Debian's package with `apt-get install -y chromium`")
    return path


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    if os.environ.get("CONDGAN_SITE_DIR"):
        return Path(os.environ["CONDGAN_SITE_DIR"])
    out = tmp_path_factory.mktemp("site")
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jb), "build", "-n", "--keep-going", "--path-output", str(out), str(ROOT)],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"the book did not build:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return out / "_build" / "html"


@pytest.fixture(scope="module")
def server(site_dir):
    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                          ".wasm": "application/wasm", ".mjs": "text/javascript", ".onnx": "application/octet-stream"}

        def log_message(self, *args):
            pass

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


@pytest.fixture
def page(browser, server):
    """A page whose requests to other hosts are blocked (and recorded), and whose failed local requests are recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
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
    yield page
    context.close()


def site_pages(site_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(site_dir)) for p in site_dir.rglob("*.html")
                  if not {"_static", "_sources", "_images"} & set(p.relative_to(site_dir).parts))


def has_id(file: Path, fragment: str) -> bool:
    text = file.read_text(errors="replace")
    return re.search(rf'\b(id|name)="{re.escape(html.escape(fragment, quote=True))}"', text) is not None


def expected_colab_url(notebook: str) -> str:
    repo, colab = CONFIG["repository"], CONFIG["launch_buttons"]["colab_url"]
    owner_name = urlparse(repo["url"]).path.strip("/")
    prefix = repo.get("path_to_book", "").strip("/")
    path = f"{prefix}/{notebook}" if prefix else notebook
    return f"{colab}/github/{owner_name}/blob/{repo['branch']}/{path}"


PAGE_CHECKS = """() => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.currentSrc || i.src);
  const math = [...document.querySelectorAll('.math')];
  const unrendered = math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 60));
  const body = (document.querySelector('main') || document.body).cloneNode(true);
  body.querySelectorAll('pre, code, script, style, textarea').forEach(e => e.remove());
  const text = body.textContent;
  const rawTex = ['$$', '\\\\(', '\\\\[', '\\\\begin{'].filter(s => text.includes(s));
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  return {broken, mathCount: math.length, rendered: document.querySelectorAll('mjx-container').length,
          unrendered, rawTex, links};
}"""


def open_page(page, url):
    page.goto(url, wait_until="load")
    if page.evaluate("() => document.querySelectorAll('.math').length") > 0:
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
        page.evaluate("() => MathJax.startup.promise.then(() => true)")


def test_every_page_in_a_real_browser(page, server, site_dir):
    pages = site_pages(site_dir)
    assert {"book/intro.html", "book/conditional.html", "book/explore.html"} <= set(pages), pages
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems, links, math_pages = [], {}, []
    for rel in pages:
        if rel == "book/explore.html":   # its generator starts on load; test_generator_runs_in_the_page waits for it
            continue
        refresh = re.search(r'http-equiv="refresh" content="\d+;\s*url=([^"]+)"', (site_dir / rel).read_text(), re.I)
        if refresh:   # index.html only forwards to the first page, which is checked in its own right
            page.goto(server + rel)
            page.wait_for_url(re.compile(re.escape(refresh.group(1).split("#")[0]) + "$"))
            continue
        open_page(page, server + rel)
        found = page.evaluate(PAGE_CHECKS)
        problems += [f"{rel}: broken image {src}" for src in found["broken"]]
        problems += [f"{rel}: formula not rendered: {t!r}" for t in found["unrendered"]]
        problems += [f"{rel}: raw TeX {s!r} left in the text" for s in found["rawTex"]]
        if found["mathCount"]:
            math_pages.append(rel)
            if not found["rendered"]:
                problems.append(f"{rel}: {found['mathCount']} formulas, no MathJax output")
        for href in found["links"]:
            links.setdefault(href, rel)
        notebook = Path(rel).with_suffix(".ipynb")
        colab = page.eval_on_selector_all('a[href^="https://colab.research.google.com"]', "els => els.map(e => e.href)")
        if (ROOT / notebook).exists():
            if expected_colab_url(str(notebook)) not in colab:
                problems.append(f"{rel}: no Colab button for {expected_colab_url(str(notebook))} (found {colab})")
        elif colab:
            problems.append(f"{rel}: a Colab button on a page that is not a notebook: {colab}")
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
    problems += [f"missing file: {m}" for m in page.missing]
    problems += [f"JavaScript error: {e}" for e in page.errors]
    unexpected = sorted({u for u in page.external if urlparse(u).hostname not in OPTIONAL_HOSTS})
    problems += [f"request to the network: {u}" for u in unexpected]
    assert not problems, "\n".join(problems)
    assert len(math_pages) >= 4, f"formulas found on {math_pages} only"
    print(f"checked {len(pages)} pages: {', '.join(pages)}; formulas rendered on {len(math_pages)}; "
          f"{sum(h.startswith(server) for h in links)} internal links")


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


def js_latent(seed: int, dim: int = 64) -> list[float]:
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

    return [gaussian() for _ in range(dim)]


def test_generator_runs_in_the_page(page, server):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    open_page(page, server + "book/explore.html")
    first = drawn(page, model="mnist-projection", **{"class": "3"})
    assert first.shape == (13, 784)
    assert (first.std(axis=1) > 20).all(), "a blank image"        # digits, not flat grey
    assert same(first[0], first[3 + 3]), "the sample differs from class 3 of the sweep row"
    # the page runs the real generator: its sample equals onnxruntime's output here for the same latent and class
    onnx = ROOT / "book" / "_static" / "explore" / "mnist-projection.onnx"
    (images,) = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).run(
        None, {"z": np.array([js_latent(0)], dtype=np.float32), "class_weights": np.eye(10, dtype=np.float32)[[3]]})
    expected = np.round(255 * np.clip(images.reshape(-1), 0, 1))
    assert np.abs(first[0] - expected).max() <= 2, "the page's image differs from the ONNX generator's"

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

    # the DCGAN walk: both paths start at seed A and end at seed B; t moves the point along the chosen path
    walk = drawn(page, "cg-walk", model="mnist-dcgan", t="0.5")
    assert walk.shape == (23, 784) and (walk[[0, 1, 2]].std(axis=1) > 20).all()
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

    page.evaluate("() => { document.activeElement.blur(); window.scrollTo(0, 0); }")
    page.screenshot(path=str(SCREENSHOTS / "explore.png"), full_page=True)
    assert not page.missing and not page.errors, (page.missing, page.errors)
    assert not page.external, page.external
    print(page.text_content("#cg-status"), page.text_content("#cg-walk-status"))
