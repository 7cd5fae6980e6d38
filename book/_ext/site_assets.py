"""Sphinx extension: copy the browser assets the site needs from node_modules into the built site's _static/vendor.

The versions are pinned in package.json and package-lock.json; `npm ci --ignore-scripts` installs them. Only the
files the pages load are copied: MathJax 3's TeX-to-HTML component with every TeX extension built in
(``tex-chtml-full.js``) and its web fonts, so that formulas render with no request to a CDN (``mathjax_path`` in
_config.yml points here). (The page "Explore the generator in your browser" runs its generators with
``_static/explore/tinyonnx.js``, a file of this repository, so onnxruntime-web is no longer copied.)

It also writes ``.nojekyll`` at the top of the site, so that GitHub Pages serves the ``_static`` folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.errors import ExtensionError

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"

# source under node_modules -> destination under _static/vendor (a trailing slash copies a whole folder)
ASSETS = {
    "mathjax/es5/tex-chtml-full.js": "mathjax/tex-chtml-full.js",
    "mathjax/es5/output/chtml/fonts/woff-v2/": "mathjax/output/chtml/fonts/woff-v2/",
    "mathjax/LICENSE": "mathjax/LICENSE",
}


def check_assets(app) -> None:
    """Fail early, with the command to run, when the pinned packages are not installed."""
    missing = [src for src in ASSETS if not (NODE_MODULES / src).exists()]
    if missing:
        raise ExtensionError(
            f"site assets missing from {NODE_MODULES}: {', '.join(missing)}. "
            "Install the pinned versions with `npm ci --ignore-scripts` in the repository root."
        )


def copy_assets(app, exception) -> None:
    """After an HTML build, copy the assets into ``_static/vendor``."""
    if exception is not None or app.builder.format != "html":
        return
    (
        Path(app.outdir) / ".nojekyll"
    ).touch()  # GitHub Pages would otherwise hide the _static folder
    vendor = Path(app.outdir) / "_static" / "vendor"
    for src, dst in ASSETS.items():
        source, target = NODE_MODULES / src, vendor / dst
        if src.endswith("/"):
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


def setup(app):
    app.connect("builder-inited", check_assets)
    app.connect("build-finished", copy_assets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
