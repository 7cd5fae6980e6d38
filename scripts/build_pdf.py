"""The whole book as one PDF: a single-page HTML build of the book, printed by headless Chromium.

    python scripts/build_pdf.py                  # writes _build/pdf/book.pdf, and copies it to _build/html/book.pdf

Steps: ``jupyter-book build --builder singlehtml`` (the stored outputs, as on the site) into ``_build/singlehtml``;
serve it on localhost; open it in Debian's Chromium through Playwright, wait until MathJax has rendered every formula
and every image has loaded; print it to A4 with the page rules of ``book/_static/site.css`` (each chapter on a new
page), a page number in the footer and the headings as PDF bookmarks.

The intro page links to ``book.pdf`` at the top of the HTML site, so the script copies the PDF into the HTML build
(``--html-dir``, default ``_build/html`` when it exists): build the HTML first, then run this script, then publish
``_build/html``. Needs what the browser test needs: ``npm ci --ignore-scripts`` and Debian's Chromium
(``apt-get install -y chromium``; ``CONDGAN_CHROMIUM`` names another binary).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FOOTER = ('<div style="font-size:8px;width:100%;text-align:center;color:#555">'
          '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')


# In the single page every chapter sits inside the intro's "Chapter map" section (where its table of contents was), so
# its headings are two levels too deep. Each chapter becomes a top-level part again: its title an <h1>, its sections
# <h2>, ...; it starts a new printed page (site.css: section.cg-chapter), and the PDF's bookmarks follow the book.
CHAPTERS = """() => {
  const chapters = [...document.querySelectorAll('span[id^="document-"] + section')];
  for (const sec of chapters) {
    sec.classList.add('cg-chapter');
    const first = sec.querySelector('h1, h2, h3, h4, h5, h6');
    const shift = first ? Number(first.tagName[1]) - 1 : 0;
    if (shift > 0) sec.querySelectorAll('h1, h2, h3, h4, h5, h6').forEach(h => {
      const n = document.createElement('h' + Math.max(1, Number(h.tagName[1]) - shift));
      for (const a of h.attributes) n.setAttribute(a.name, a.value);
      n.append(...h.childNodes);
      h.replaceWith(n);
    });
  }
  const holder = chapters.length ? chapters[0].parentElement.closest('section') : null;   // the "Chapter map" section
  const heading = holder && holder.querySelector(':scope > h1, :scope > h2, :scope > h3');
  if (heading) heading.remove();
  return {chapters: chapters.map(s => s.querySelector('h1') ? s.querySelector('h1').textContent.replace('#', '').trim() : '')};
}"""


def chromium() -> str:
    path = os.environ.get("CONDGAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        sys.exit("build_pdf: Chromium not found; install Debian's package (`apt-get install -y chromium`) "
                 "or set CONDGAN_CHROMIUM")
    return path


def build_singlehtml(out: Path) -> Path:
    """``jupyter-book build --builder singlehtml`` with ``--path-output out``; the folder of the built page."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", "--builder", "singlehtml", "-n", "--keep-going",
           "--path-output", str(out), str(ROOT)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"build_pdf: the single-page build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return out / "_build" / "singlehtml"


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def print_pdf(site: Path, pdf: Path) -> dict:
    """Print the single page to ``pdf``; what was printed (formulas, images, seconds)."""
    from playwright.sync_api import sync_playwright

    # Sphinx writes the single page as book/intro.html (the root document) but makes its links relative to the top
    # of the build (_static/..., _images/...): it is read from the top, where index.html only redirects to it.
    single = site / "book" / "intro.html"
    if not single.exists():
        sys.exit(f"build_pdf: {single} is missing")
    shutil.copyfile(single, site / "index.html")
    httpd, url = serve(site)
    t0 = time.perf_counter()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_FLAGS)
            context = browser.new_context(viewport={"width": 1000, "height": 1400})
            # nothing leaves the machine: optional CDN assets (the animation player's icon font) are left out
            context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(url) else r.abort())
            page = context.new_page()
            page.goto(url + "index.html", wait_until="load", timeout=120_000)
            page.emulate_media(media="print")
            # the in-browser generators draw before printing (the second one waits for a reader to come near it)
            page.evaluate("() => document.querySelectorAll('.cg-widget').forEach("
                          "w => w.dispatchEvent(new FocusEvent('focusin')))")
            try:
                page.wait_for_function("() => [...document.querySelectorAll('.cg-widget')].every("
                                       "w => ['ready', 'error'].includes(w.dataset.state))", timeout=60_000)
            except Exception:   # noqa: BLE001 - the PDF is still worth printing; the browser test checks the widgets
                print("build_pdf: the in-browser generators did not finish drawing", file=sys.stderr)
            page.wait_for_function("() => !document.querySelector('.math') || "
                                   "(window.MathJax && MathJax.startup && MathJax.startup.promise)", timeout=120_000)
            page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise.then(() => true) : true")
            page.evaluate("() => Promise.all([...document.images].map(i => i.decode().catch(() => null)))")
            found = page.evaluate(CHAPTERS)
            found.update(page.evaluate("""() => ({
                formulas: document.querySelectorAll('mjx-container').length,
                images: document.images.length,
                titles: [...document.querySelectorAll('h1')].map(h => h.textContent.replace('#', '').trim())})"""))
            pdf.parent.mkdir(parents=True, exist_ok=True)
            page.pdf(path=str(pdf), format="A4", print_background=True, outline=True, tagged=True,
                     display_header_footer=True, header_template="<span></span>", footer_template=FOOTER,
                     margin={"top": "14mm", "bottom": "16mm", "left": "12mm", "right": "12mm"})
            browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    found["seconds"] = round(time.perf_counter() - t0, 1)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "_build" / "pdf" / "book.pdf"), help="the PDF to write")
    parser.add_argument("--build-dir", default=str(ROOT),
                        help="jupyter-book's --path-output for the single-page build (default: the repository, "
                             "so the build lands in _build/singlehtml)")
    parser.add_argument("--html-dir", default=None,
                        help="an HTML build to copy the PDF into as book.pdf (default: _build/html when it exists; "
                             "'none' to skip)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    site = build_singlehtml(Path(args.build_dir))
    built = time.perf_counter() - t0
    pdf = Path(args.out)
    found = print_pdf(site, pdf)
    pages = pdf.read_bytes().count(b"/Type /Page\n") or pdf.read_bytes().count(b"/Type /Page ")
    print(f"build_pdf: {pdf} ({pdf.stat().st_size / 1e6:.1f} MB, about {pages} pages): {len(found['chapters'])} "
          f"chapters, {found['formulas']} formulas, {found['images']} images; "
          f"single-page build {built:.0f} s, printing {found['seconds']:.0f} s")
    html_dir = args.html_dir or (str(ROOT / "_build" / "html") if (ROOT / "_build" / "html").is_dir() else "none")
    if html_dir != "none":
        target = Path(html_dir) / "book.pdf"
        shutil.copyfile(pdf, target)
        print(f"build_pdf: copied to {target}, which the intro page links")
    return 0


if __name__ == "__main__":
    sys.exit(main())
