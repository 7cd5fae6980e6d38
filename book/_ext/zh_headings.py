"""Sphinx extension of the Chinese edition (scripts/i18n.py): each translated heading keeps its English anchor.

``scripts/i18n.py`` writes ``zh_slugs.json`` beside the Chinese book's sources, mapping each page's translated
headings to the anchors MyST gives the English ones; ``myst_heading_slug_func = "zh_headings.english_slug"`` looks
them up, so a link ``page.ipynb#section`` written in English resolves in both editions. The section itself gets the
English anchor as its first id (its Chinese-derived id stays as a second one), so that a page's address with a
section, ``page.html#section``, is the same in both editions and the language button keeps the reader's place. A
heading missing from the table gets MyST's own slug.
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from myst_parser.mdit_to_docutils.base import default_slugify

SLUGS: dict[str, dict[str, str]] = {}  # page -> translated heading -> English anchor
APP = []


def english_slug(title: str) -> str:
    page = APP[0].env.docname if APP else ""
    return SLUGS.get(page, {}).get(title) or default_slugify(title)


def english_ids(app, doctree) -> None:
    """Before the table of contents is collected: the English anchor becomes each section's first id."""
    for section in doctree.findall(nodes.section):
        slug = section.get("slug")
        if slug and slug not in section["ids"] and slug not in doctree.ids:
            section["ids"].insert(0, slug)
            doctree.ids[slug] = section


def setup(app):
    table = Path(app.srcdir) / "zh_slugs.json"
    if table.exists():
        SLUGS.update(json.loads(table.read_text()))
    APP[:] = [app]
    app.connect("doctree-read", english_ids, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
