"""Sphinx extension: what the book's pages need beyond the theme's defaults.

- **Widget outputs.** A notebook saved from a live kernel keeps ipywidgets views (sliders, ``interact`` forms, tqdm
  progress bars). In a static page they are inert, and without the widget manager from a CDN they render as nothing.
  Each view is replaced here: a tqdm bar by the line of text it ended on (read from the notebook's saved widget state),
  any other control by one note that says where the controls work (Colab, a local kernel, and the page "Explore the
  generator in your browser"). The widget state and the widget manager's scripts are dropped from the page, so no page
  asks a CDN for them.
- **Equation numbers.** With ``math_number_all`` (Sphinx's option for its ``math`` directive) every display formula
  written as ``$$ ... $$`` gets a number too, as MyST gives one only to formulas with a label; with ``math_numfig``
  the numbers follow the chapters (1.1, 1.2, ...).
- **Glossary terms.** The first use of each glossary term in a page's prose links to its entry.
- **Page titles.** A page whose title is the book's title (the introduction) gets ``<title>`` once, not
  "title — title".
- **Bibliography labels.** The pybtex style ``authoryear`` labels each entry "Goodfellow et al., 2014", the text that
  the author-year citations in the chapters show, and sorts the list by author and year.
- ``_static/site.css``: the note's look, and print rules for the whole-book PDF (``scripts/build_pdf.py``);
  ``_static/site.js`` makes every figure a link to its full-size file.
"""

from __future__ import annotations

import html
import json
import re
from types import SimpleNamespace

from docutils import nodes
from sphinx import addnodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_VIEW_SCRIPT = re.compile(
    r'^\s*<script type="application/vnd\.jupyter\.widget-view\+json">(.*)</script>\s*$',
    re.S,
)
PROGRESS_MODELS = {"FloatProgressModel", "IntProgressModel"}
EXPLORE_DOC = "book/explore"


# --- widget outputs -------------------------------------------------------------------------------------------------


def _take_widget_state(env, docname: str) -> dict:
    """The notebook's saved widget models (model id -> model), removed from the scripts myst-nb adds to the page."""
    js_files = getattr(env, "nb_metadata", {}).get(docname, {}).get("js_files", {})
    state = {}
    for key in [k for k in js_files if k.startswith("ipywidgets_")]:
        _uri, kwargs = js_files.pop(key)
        if key == "ipywidgets_state":
            try:
                state = json.loads(kwargs.get("body", "{}")).get("state", {})
            except ValueError:
                state = {}
    return state


def _children(state: dict, model: dict) -> list[dict]:
    ids = [
        c.replace("IPY_MODEL_", "")
        for c in model.get("state", {}).get("children", [])
        if isinstance(c, str)
    ]
    return [state[i] for i in ids if i in state]


def _plain(value: str) -> str:
    text = html.unescape(re.sub(r"<[^>]+>", "", value or ""))
    return text.replace("\u2007", " ").replace("\xa0", " ")


def progress_line(state: dict, model_id: str) -> str | None:
    """The text of a tqdm notebook bar (an HBox of HTML, a progress bar and HTML) as it ended, or None."""
    model = state.get(model_id)
    if not model or model.get("model_name") != "HBoxModel":
        return None
    parts, is_bar = [], False
    for child in _children(state, model):
        name, values = child.get("model_name"), child.get("state", {})
        if name in PROGRESS_MODELS:
            is_bar = True
            total, value = values.get("max") or 0, values.get("value") or 0
            filled = max(0, min(10, round(10 * value / total))) if total else 0
            parts.append("|" + "\u2588" * filled + " " * (10 - filled) + "|")
        elif name == "HTMLModel":
            parts.append(_plain(values.get("value", "")))
        else:
            return None
    return "".join(parts).strip() if is_bar else None


def _widget_note(docname: str, ui: dict) -> nodes.container:
    link = addnodes.pending_xref(
        "",
        nodes.inline("", ui["widget_note_link"]),
        refdomain="std",
        reftype="doc",
        reftarget="/" + EXPLORE_DOC,
        refexplicit=True,
        refwarn=True,
        refdoc=docname,
    )
    para = nodes.paragraph(
        "",
        "",
        nodes.strong("", ui["widget_note_title"]),
        nodes.Text(ui["widget_note_before"]),
        link,
        nodes.Text(ui["widget_note_after"]),
    )
    return nodes.container("", para, classes=["cg-widget-note"])


def replace_widget_views(app, doctree) -> None:
    """Replace each widget view of a notebook page by the text of its progress bar or by one note per output."""
    docname = app.env.docname
    state = _take_widget_state(app.env, docname)
    noted = set()
    for raw in list(doctree.findall(nodes.raw)):
        match = (
            WIDGET_VIEW_SCRIPT.match(raw.astext())
            if "html" in raw.get("format", "").split()
            else None
        )
        if not match:
            continue
        try:
            model_id = json.loads(match.group(1)).get("model_id", "")
        except ValueError:
            model_id = ""
        cell = (
            raw.parent
        )  # the cell's output area (each output sits in its own mime bundle inside it)
        while cell.parent is not None and "cell_output" not in cell.get("classes", []):
            cell = cell.parent
        line = progress_line(state, model_id)
        if line is not None:
            raw.replace_self(
                nodes.literal_block(
                    line, line, language="none", classes=["output", "stream"]
                )
            )
        elif (
            id(cell) in noted
        ):  # a cell that shows several controls (a form and its output area) gets one note
            raw.parent.remove(raw)
        else:
            noted.add(id(cell))
            raw.replace_self(_widget_note(docname, ui_text(app)))


# --- equation numbers -----------------------------------------------------------------------------------------------


def number_equations(app, doctree) -> None:
    """Give every unlabelled ``$$`` formula a label and a number, as Sphinx's ``math`` directive does with
    ``math_number_all``."""
    if not app.config.math_number_all:
        return
    env, docname = app.env, app.env.docname
    domain = env.get_domain("math")
    for node in doctree.findall(nodes.math_block):
        if node.get("label") or node.get("nowrap"):
            continue
        node["label"] = f"{docname}:{env.new_serialno('sphinx.ext.math#equations')}"
        domain.note_equation(docname, node["label"], location=node)
        node["number"] = domain.get_equation_number_for(node["label"])
        node["docname"] = docname
        node["ids"].insert(0, nodes.make_id("equation-%s" % node["label"]))


# --- glossary terms -------------------------------------------------------------------------------------------------

GLOSSARY_DOC = "book/glossary"
NO_TERM_LINKS_IN = (nodes.literal, nodes.literal_block, nodes.reference, nodes.math, nodes.math_block, nodes.title,
                    nodes.raw, nodes.caption, addnodes.pending_xref, nodes.term, nodes.citation_reference)


def _glossary_terms(env) -> list[tuple[re.Pattern, str]]:
    """(pattern of the English term, anchor) for every glossary entry, longest term first ("spectral normalisation"
    before "normalisation"). An entry reads "English term · 中文"; a parenthesised acronym is left out of the match."""
    terms = []
    for (kind, name), entry in env.get_domain("std").objects.items():
        if kind != "term" or entry[0] != GLOSSARY_DOC:
            continue
        english = re.sub(r"\s*\(.*?\)", "", name.split(" · ")[0]).strip()
        if len(english) >= 3:
            terms.append((english, entry[1]))
    terms.sort(key=lambda t: -len(t[0]))
    return [(re.compile(rf"(?<![\w-]){re.escape(e)}(?![\w-])", re.I), anchor) for e, anchor in terms]


def link_glossary_terms(app, doctree, docname) -> None:
    """Link the first use of each glossary term in a chapter's prose to its entry (not in code, formulas, titles,
    captions, links, or the 中文导读 box)."""
    if app.builder.format != "html" or not docname.startswith("book/") or docname in (GLOSSARY_DOC,
                                                                                      "book/bibliography"):
        return
    pending = _glossary_terms(app.env)
    target = app.builder.get_relative_uri(docname, GLOSSARY_DOC)
    texts = list(doctree.findall(nodes.Text))
    while texts and pending:
        text = texts.pop(0)
        parent = text.parent
        if not isinstance(parent, (nodes.paragraph, nodes.emphasis, nodes.strong, nodes.inline)):
            continue
        ancestors, node = [], parent
        while node is not None:
            ancestors.append(node)
            node = node.parent
        if any(isinstance(a, NO_TERM_LINKS_IN) for a in ancestors) or any(
                "cell_output" in a.get("classes", []) or "tip" in a.get("classes", []) for a in ancestors
                if isinstance(a, nodes.Element)):
            continue
        value = str(text)
        found = min(((m.start(), m.end(), i) for i, (pattern, _) in enumerate(pending)
                     if (m := pattern.search(value))), default=None)
        if found is None:
            continue
        start, end, i = found
        anchor = pending.pop(i)[1]
        link = nodes.reference(value[start:end], value[start:end], refuri=f"{target}#{anchor}",
                               classes=["cg-term"], internal=True)
        rest = nodes.Text(value[end:])
        parent.replace(text, [nodes.Text(value[:start]), link, rest])
        texts.insert(0, rest)   # the rest of the sentence may hold another term's first use


# --- page titles ----------------------------------------------------------------------------------------------------


def single_title(app, pagename, templatename, context, doctree) -> None:
    """``<title>`` is "page — book"; on the page whose title is the book's own, say it once."""
    title, book = context.get("title"), context.get("docstitle")
    if title and book and re.sub(r"<[^>]+>", "", title).strip() == book.strip():
        logo = dict(context.get("theme_logo") or {})
        logo.setdefault(
            "text", book
        )  # the sidebar's book title reads docstitle otherwise
        context["theme_logo"] = logo
        context["docstitle"] = ""


# --- bibliography labels --------------------------------------------------------------------------------------------


def register_bibliography_style() -> None:
    import pybtex.plugin
    from pybtex.style.formatting.unsrt import Style as UnsrtStyle
    from pybtex.style.labels import BaseLabelStyle
    from pybtex.style.template import join
    from sphinxcontrib.bibtex.style.referencing import PersonStyle
    from sphinxcontrib.bibtex.style.template import year

    person = PersonStyle()
    template = join(sep=", ")[person.author_or_editor_or_title(full=False), year]
    context = SimpleNamespace(person=person)

    class AuthorYearLabelStyle(BaseLabelStyle):
        """ "Goodfellow et al., 2014": the author-year citation's text; a, b, ... where two entries would share one."""

        def format_labels(self, sorted_entries):
            entries = list(sorted_entries)
            labels = [
                template.format_data({"entry": e, "style": context}).render_as("text")
                for e in entries
            ]
            seen: dict[str, int] = {}
            for label in labels:
                seen[label] = seen.get(label, 0) + 1
            count: dict[str, int] = {}
            for label in labels:
                if seen[label] > 1:
                    count[label] = count.get(label, 0) + 1
                    yield label + "abcdefghijklmnopqrstuvwxyz"[count[label] - 1]
                else:
                    yield label

    class AuthorYearStyle(UnsrtStyle):
        default_label_style = AuthorYearLabelStyle
        default_sorting_style = "author_year_title"

    pybtex.plugin.register_plugin(
        "pybtex.style.formatting", "authoryear", AuthorYearStyle, force=True
    )


# --- the other edition ------------------------------------------------------------------------------------------------

# The site's own interface text. The Chinese edition (scripts/i18n.py) sets ``cg_ui_text`` from its catalogue _book.po
# and ``cg_other_language`` to point back at the English pages.
UI_TEXT = {
    "widget_note_title": "Interactive controls.",
    "widget_note_before": " They need a live Python kernel, so this static page leaves them out. Open the chapter in "
                          "Colab (the rocket button at the top of the page) or in Jupyter on your machine to use them; "
                          "the page ",
    "widget_note_link": "Explore the generator in your browser",
    "widget_note_after": " runs the book's generators without a kernel.",
    "full_size_image": "Open the full-size image",
    # the label of a collapsed code cell (myst-nb's nb_code_prompt_show / _hide; the English pages keep its default)
    "code_prompt_show": "Show code",
    "code_prompt_hide": "Hide code",
}
OTHER_LANGUAGE = {"label": "中文版", "title": "Read this page in Chinese", "prefix": "zh/", "hreflang": "zh-CN"}


def ui_text(app) -> dict:
    return {**UI_TEXT, **app.config.cg_ui_text}


def other_language(app, pagename, templatename, context, doctree) -> None:
    """A ``<link rel="alternate">`` to the same page in the other edition, which site.js shows as a button; and the
    interface text site.js needs."""
    other = {**OTHER_LANGUAGE, **app.config.cg_other_language}
    href = "../" * pagename.count("/") + other["prefix"] + pagename + ".html"
    tags = (f'<link rel="alternate" hreflang="{other["hreflang"]}" href="{html.escape(href)}" '
            f'title="{html.escape(other["title"])}" data-label="{html.escape(other["label"])}">\n'
            f'<meta name="cg-full-size-title" content="{html.escape(ui_text(app)["full_size_image"])}">\n')
    context["metatags"] = context.get("metatags", "") + tags


def add_css(app) -> None:
    if app.builder.format == "html":
        app.add_css_file("site.css")
        app.add_js_file("site.js")


def setup(app):
    register_bibliography_style()
    app.connect("builder-inited", add_css)
    app.connect("doctree-read", replace_widget_views)
    app.connect("doctree-read", number_equations)
    app.connect("html-page-context", single_title)
    app.connect("html-page-context", other_language)
    app.add_config_value("cg_ui_text", {}, "html")
    app.add_config_value("cg_other_language", {}, "html")
    app.connect("doctree-resolved", link_glossary_terms)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
