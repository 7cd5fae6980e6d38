"""Sphinx extension of the Chinese edition (scripts/i18n.py): each translated heading keeps its English anchor.

``scripts/i18n.py`` writes ``zh_slugs.json`` beside the Chinese book's sources, mapping each page's translated
headings to the anchors MyST gives the English ones; ``myst_heading_slug_func = "zh_headings.english_slug"`` looks it up,
so a link ``page.ipynb#section`` written in English resolves in both editions and a reader switching language keeps
their place. A heading missing from the table gets MyST's own slug.
"""

from __future__ import annotations

import json
from pathlib import Path

from myst_parser.mdit_to_docutils.base import default_slugify

SLUGS: dict[str, dict[str, str]] = {}  # page -> translated heading -> English anchor
APP = []


def english_slug(title: str) -> str:
    page = APP[0].env.docname if APP else ""
    return SLUGS.get(page, {}).get(title) or default_slugify(title)


def setup(app):
    table = Path(app.srcdir) / "zh_slugs.json"
    if table.exists():
        SLUGS.update(json.loads(table.read_text()))
    APP[:] = [app]
    return {"parallel_read_safe": True, "parallel_write_safe": True}
