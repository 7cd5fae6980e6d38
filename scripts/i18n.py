"""The Chinese edition: one set of notebooks, the prose translated in gettext catalogues.

Sphinx's own translated build cannot read notebooks (MyST-NB issue #587: the translated message is re-parsed by the
notebook parser and fails), so the translations live in ordinary gettext catalogues and this script applies them:

    python scripts/i18n.py update      # after editing the English text: refresh locales/zh_CN/LC_MESSAGES/*.po
    python scripts/i18n.py status      # messages per page, translated, fuzzy, untranslated
    python scripts/i18n.py check       # every translation keeps its message's code, formulas, links and citations
    python scripts/i18n.py build       # the Chinese book: sources in _build/zh_src, site in _build/html/zh
    python scripts/i18n.py export dcgan > dcgan.txt    # a catalogue as numbered blocks, to translate in any editor
    python scripts/i18n.py import dcgan dcgan.txt      # and back: "### N" then the translation of message N

A message is one block of a page's Markdown: a paragraph, a heading, a list item, a table row, an admonition's title
or a figure's alt text. Code, formulas, outputs and raw HTML are not messages: the Chinese notebooks are the English
ones with their Markdown cells translated, every code cell and output copied unchanged. A message with no
translation yet stays English in the Chinese book. ``update`` keeps every translation whose message is unchanged; a
message that was edited gets its old translation back marked fuzzy, for a translator to check, and the test
(`tests/test_i18n.py`) fails until nothing is untranslated or fuzzy.

Headings keep their English anchors in the Chinese book (``myst_heading_slug_func``), so that every link of the form
``page.ipynb#section`` works in both editions, and the language switch keeps the reader's place.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import polib
import yaml

ROOT = Path(__file__).resolve().parents[1]
LOCALE = "zh_CN"
CATALOGUES = ROOT / "locales" / LOCALE / "LC_MESSAGES"
ZH_SRC = ROOT / "_build" / "zh_src"
ZH_HTML = ROOT / "_build" / "html" / "zh"
BOOK_CATALOGUE = "_book"  # the book's title, the table of contents' part captions and the site's own interface text

# the site's interface text (book/_ext/site_pages.py), translated in _book.po
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from site_pages import UI_TEXT

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
LETTERS = re.compile(r"[A-Za-z]{2,}")


def pages() -> list[Path]:
    """Every page of the book, in the table of contents' order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    found = []
    for name in files:
        for ext in (".ipynb", ".md"):
            if (ROOT / (name + ext)).exists():
                found.append(ROOT / (name + ext))
                break
        else:
            raise FileNotFoundError(f"_toc.yml names {name}, which is neither {name}.ipynb nor {name}.md")
    return found


# --- splitting Markdown into messages -------------------------------------------------------------------------------


@dataclass
class Piece:
    """A stretch of a Markdown source. ``message`` is None for text that is never translated; otherwise the piece is
    ``prefix + message``-shaped text (``original``) that a translation replaces by ``prefix + translation + "\\n"``."""

    original: str
    message: str | None = None
    prefix: str = ""


FENCE = re.compile(r"^(\s*)(`{3,}|~{3,}|:{3,})(.*)$")
HEADING = re.compile(r"^(#{1,6}\s+)(.*?)\s*$")
LIST_ITEM = re.compile(r"^(\s*)([-*+:]|\d+[.)])(\s+)(.*)$")  # ":" starts a definition (deflist)
OPTION = re.compile(r"^(\s*:[\w-]+:\s*)(.*)$")
TRANSLATED_OPTIONS = {"alt"}
# directives whose body is prose; the ones with a title argument translate it too
PROSE_DIRECTIVES = {"admonition", "note", "tip", "hint", "important", "warning", "caution", "attention", "danger",
                    "error", "seealso", "dropdown", "figure", "glossary", "margin", "sidebar", "topic", "epigraph"}
TITLED_DIRECTIVES = {"admonition", "dropdown", "sidebar", "topic"}
BLOCK_HTML = re.compile(r"^\s*<(div|figure|link|script|style|details|table|canvas|iframe|noscript|section|svg|p|!--)\b",
                        re.IGNORECASE)


def _translatable(text: str) -> bool:
    """Prose worth translating: English words outside code and formulas, and not already Chinese (English prose
    that gives a Chinese term in parentheses is still English: more Latin letters than Chinese characters)."""
    bare = re.sub(r"`[^`]*`|\$[^$]*\$|\]\([^)]*\)|\{\w+\}|<[^>]*>", " ", text)
    if re.search(r" · .*[\u4e00-\u9fff]", text):  # a glossary term, "English · 中文", stays as it is in both editions
        return False
    return bool(LETTERS.search(bare)) and len(re.findall(r"[A-Za-z]", bare)) > len(CJK.findall(bare))


def _starts_block(line: str) -> bool:
    return bool(FENCE.match(line) or HEADING.match(line) or LIST_ITEM.match(line) or line.strip().startswith("$$")
                or line.lstrip().startswith("|") or line.lstrip().startswith("\\begin{")
                or re.match(r"^\s*\(.+\)=\s*$", line) or BLOCK_HTML.match(line))


def _message(lines: list[str], prefix: str, text: str) -> Piece:
    joined = " ".join(part.strip() for part in text.split("\n")).strip()
    original = "".join(lines)
    return Piece(original, joined, prefix) if _translatable(joined) else Piece(original)


def split(source: str) -> list[Piece]:
    """The pieces of a Markdown source; their ``original`` texts concatenate to the source exactly."""
    lines = source.splitlines(keepends=True)
    pieces: list[Piece] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        fence = FENCE.match(line)
        if not stripped:
            pieces.append(Piece(line))
            i += 1
        elif fence:
            indent, marks, info = fence.groups()
            end = i + 1
            while end < len(lines) and not re.match(rf"^\s*{re.escape(marks[0])}{{{len(marks)},}}\s*$", lines[end]):
                end += 1
            body, closing = lines[i + 1:end], lines[end:end + 1]
            directive = re.match(r"^\{([\w-]+)\}\s*(.*?)\s*$", info.strip())
            name = directive.group(1) if directive else None
            block = "".join(lines[i:end + 1])
            if name in PROSE_DIRECTIVES and not CJK.search(directive.group(2)):
                title = directive.group(2)
                if name in TITLED_DIRECTIVES and title and _translatable(title):
                    head = line[:len(line) - len(line.lstrip())] + marks + "{" + name + "} "
                    pieces.append(Piece(line, title, head))
                else:
                    pieces.append(Piece(line))
                j = 0
                while j < len(body) and OPTION.match(body[j]):  # the directive's options
                    option = OPTION.match(body[j])
                    key = option.group(1).strip().strip(":")
                    if key in TRANSLATED_OPTIONS and _translatable(option.group(2)):
                        pieces.append(Piece(body[j], option.group(2).strip(), option.group(1)))
                    else:
                        pieces.append(Piece(body[j]))
                    j += 1
                pieces += split("".join(body[j:]))
                pieces += [Piece(c) for c in closing]
            else:
                pieces.append(Piece(block))
            i = end + 1
        elif stripped.startswith(("$$", "\\begin{")):
            end = i
            closer = "$$" if stripped.startswith("$$") else "\\end{"
            if not (stripped.startswith("$$") and len(stripped) > 2 and stripped.endswith("$$")):
                end = i + 1
                while end < len(lines) and closer not in lines[end]:
                    end += 1
            pieces.append(Piece("".join(lines[i:end + 1])))
            i = end + 1
        elif re.match(r"^\s*\(.+\)=\s*$", line) or stripped.startswith("%"):
            pieces.append(Piece(line))
            i += 1
        elif BLOCK_HTML.match(line):
            end = i
            while end + 1 < len(lines) and lines[end + 1].strip():
                end += 1
            pieces.append(Piece("".join(lines[i:end + 1])))
            i = end + 1
        elif (heading := HEADING.match(line)):
            pieces.append(_message([line], heading.group(1), heading.group(2)))
            i += 1
        elif stripped.startswith("|"):
            if re.fullmatch(r"\|?[\s:|-]+\|?", stripped):
                pieces.append(Piece(line))
            else:
                indent = line[:len(line) - len(line.lstrip())]
                pieces.append(_message([line], indent, stripped))
            i += 1
        elif (item := LIST_ITEM.match(line)):
            indent, marker, space, text = item.groups()
            width = len(indent) + len(marker) + len(space)
            end = i + 1
            while (end < len(lines) and lines[end].strip() and not _starts_block(lines[end])
                   and len(lines[end]) - len(lines[end].lstrip()) >= width):
                end += 1
            body = text + "".join("\n" + x for x in lines[i + 1:end])
            pieces.append(_message(lines[i:end], indent + marker + space, body))
            i = end
        elif stripped.startswith(">"):
            end = i
            while end + 1 < len(lines) and lines[end + 1].strip().startswith(">"):
                end += 1
            prefix = line[:line.index(">") + 1] + " "
            text = "\n".join(x.strip()[1:].strip() for x in lines[i:end + 1])
            pieces.append(_message(lines[i:end + 1], prefix, text))
            i = end + 1
        else:  # a paragraph: up to a blank line or the start of another block
            indent = line[:len(line) - len(line.lstrip())]
            end = i + 1
            while (end < len(lines) and lines[end].strip() and not _starts_block(lines[end])
                   and len(lines[end]) - len(lines[end].lstrip()) <= len(indent)):  # a glossary term ends at its
                end += 1                                                            # indented definition
            pieces.append(_message(lines[i:end], indent, "".join(lines[i:end])))
            i = end
    return pieces


def translate(source: str, translations: dict[str, str]) -> str:
    """The source with every message that has a translation replaced by it; other text unchanged."""
    out = []
    for piece in split(source):
        target = translations.get(piece.message) if piece.message else None
        if target:
            ending = "\n" if piece.original.endswith("\n") else ""
            out.append(piece.prefix + target + ending)
        else:
            out.append(piece.original)
    return "".join(out)


# --- the sources' messages and the catalogues ------------------------------------------------------------------------


def markdown_blocks(path: Path) -> list[tuple[str, str]]:
    """(where, Markdown) for a page: each Markdown cell of a notebook, or the whole of a Markdown file."""
    if path.suffix == ".ipynb":
        notebook = json.loads(path.read_text())
        return [(f"{path.relative_to(ROOT)}:{cell.get('id', n)}", "".join(cell["source"]))
                for n, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "markdown"]
    return [(str(path.relative_to(ROOT)), path.read_text())]


def page_messages(path: Path) -> dict[str, list[str]]:
    """Each message of a page, in order of first appearance, with where it occurs."""
    found: dict[str, list[str]] = {}
    for where, text in markdown_blocks(path):
        for piece in split(text):
            if piece.message:
                found.setdefault(piece.message, []).append(where)
    return found


def book_messages() -> dict[str, list[str]]:
    """The messages of the book's frame: its title, the table of contents' captions, the site's interface."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found = {config["title"]: ["_config.yml:title"]}
    for part in toc["parts"]:
        found.setdefault(part["caption"], []).append("_toc.yml:caption")
    for key, text in UI_TEXT.items():
        if not CJK.search(text):
            found.setdefault(text, []).append(f"site:{key}")
    return found


def catalogue_path(name: str) -> Path:
    return CATALOGUES / f"{name}.po"


def all_messages() -> dict[str, dict[str, list[str]]]:
    """Catalogue name -> its messages: one catalogue per page, and _book for the frame."""
    return {BOOK_CATALOGUE: book_messages(), **{p.stem: page_messages(p) for p in pages()}}


def update(names: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Bring the catalogues (all, or the named ones) in line with the sources; returns, per catalogue, how many
    messages were added, kept, carried over as fuzzy and dropped."""
    CATALOGUES.mkdir(parents=True, exist_ok=True)
    report = {}
    for name, messages in all_messages().items():
        if names and name not in names:
            continue
        path = catalogue_path(name)
        old = polib.pofile(str(path)) if path.exists() else polib.POFile()
        known = {e.msgid: e for e in old if not e.obsolete}
        gone = [e for e in old if e.msgid not in messages and e.msgstr]
        po = polib.POFile(wrapwidth=0)
        po.metadata = {"Project-Id-Version": "dalle2-principles-and-code", "Language": LOCALE,
                       "MIME-Version": "1.0", "Content-Type": "text/plain; charset=UTF-8",
                       "Content-Transfer-Encoding": "8bit"}
        counts = {"added": 0, "kept": 0, "fuzzy": 0, "dropped": 0}
        for msgid, where in messages.items():
            entry = polib.POEntry(msgid=msgid, msgstr="", occurrences=[(w, "") for w in dict.fromkeys(where)])
            if msgid in known:
                entry.msgstr, entry.flags = known[msgid].msgstr, list(known[msgid].flags)
                counts["kept"] += 1
            else:
                close = difflib.get_close_matches(msgid, [e.msgid for e in gone], n=1, cutoff=0.75)
                if close:  # an edited message: its old translation, for a translator to check
                    previous = next(e for e in gone if e.msgid == close[0])
                    entry.msgstr, entry.flags, entry.previous_msgid = previous.msgstr, ["fuzzy"], previous.msgid
                    counts["fuzzy"] += 1
                else:
                    counts["added"] += 1
            po.append(entry)
        counts["dropped"] = len([e for e in old if not e.obsolete and e.msgid not in messages])
        text = str(po)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        report[name] = counts
    return report


def load_translations(name: str) -> dict[str, str]:
    """msgid -> msgstr of a catalogue, translated and not fuzzy entries only."""
    path = catalogue_path(name)
    if not path.exists():
        return {}
    return {e.msgid: e.msgstr for e in polib.pofile(str(path)) if e.msgstr and not e.fuzzy and not e.obsolete}


def status() -> dict[str, dict[str, int]]:
    """Per catalogue: messages, translated, fuzzy, untranslated; and whether the catalogue is current."""
    result = {}
    for name, messages in all_messages().items():
        path = catalogue_path(name)
        entries = {e.msgid: e for e in polib.pofile(str(path)) if not e.obsolete} if path.exists() else {}
        translated = sum(1 for m in messages if m in entries and entries[m].msgstr and not entries[m].fuzzy)
        fuzzy = sum(1 for m in messages if m in entries and entries[m].fuzzy)
        result[name] = {"messages": len(messages), "translated": translated, "fuzzy": fuzzy,
                        "untranslated": len(messages) - translated - fuzzy,
                        "missing_from_catalogue": sum(1 for m in messages if m not in entries)}
    return result


# --- what a translation must keep ------------------------------------------------------------------------------------

KEPT = {
    "inline code": re.compile(r"(?<!`)`[^`\n]+`(?!`)"),
    "formula": re.compile(r"(?<![\\$])\$[^$\n]+\$"),
    "link target": re.compile(r"\]\(([^)\s]+)\)"),
    "role": re.compile(r"\{[\w:-]+\}"),
    "html tag": re.compile(r"</?([a-zA-Z]+)"),
}


def problems(msgid: str, msgstr: str) -> list[str]:
    """What a translation changed that it must not: code, formulas, link targets, roles, HTML tags, table cells."""
    found = []
    for what, pattern in KEPT.items():
        a, b = sorted(pattern.findall(msgid)), sorted(pattern.findall(msgstr))
        if a != b:
            missing = [x for x in a if x not in b][:3]
            extra = [x for x in b if x not in a][:3]
            found.append(f"{what} differs (missing {missing}, added {extra})")
    if msgid.startswith("|") and msgid.count("|") != msgstr.count("|"):
        found.append(f"table row has {msgstr.count('|')} '|' instead of {msgid.count('|')}")
    if "\n" in msgstr:
        found.append("a translation is one line")
    return found


PAGE_LINK = re.compile(r"\[([^\]]+)\]\(([\w.]+\.(?:ipynb|md))\)")


def page_titles() -> dict[str, tuple[str, str | None]]:
    """File name -> (English title, Chinese title or None) of every page."""
    titles = {}
    for path in pages():
        translations = load_translations(path.stem)
        for piece in split(markdown_blocks(path)[0][1]):
            if piece.message and piece.prefix == "# ":
                titles[path.name] = (piece.message, translations.get(piece.message))
                break
    return titles


def check() -> list[str]:
    """Each translation keeps what it must (``problems``), and a link that names a page by its English title names
    it by its Chinese title, so that the same chapter is called the same everywhere."""
    errors, titles = [], page_titles()
    for name in all_messages():
        for msgid, msgstr in load_translations(name).items():
            errors += [f"{name}.po: {p}: {msgid[:70]!r}" for p in problems(msgid, msgstr)]
            named = {target for text, target in PAGE_LINK.findall(msgid)
                     if target in titles and text.strip() == titles[target][0]}
            for text, target in PAGE_LINK.findall(msgstr):
                if target in named and titles[target][1] and text != titles[target][1]:
                    errors.append(f"{name}.po: the link to {target} reads [{text}], its title is [{titles[target][1]}]")
    return errors


# --- the Chinese book -----------------------------------------------------------------------------------------------


def heading_title(text: str) -> str:
    """A heading's text as MyST slugs it: text and inline code, without formulas, markup or link targets."""
    text = re.sub(r"\$[^$]*\$", "", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\{[\w:-]+\}`([^`]*)`", r"\1", text)
    text = re.sub(r"\*\*|\*", "", text)  # emphasis, outside code spans (underscores in headings are code's)
    return re.sub(r"`([^`]*)`", r"\1", text)


def heading_slugs(translations: dict[str, str], sources: list[str]) -> dict[str, str]:
    """Translated heading text -> the English heading's base slug, for the headings of the given sources."""
    from myst_parser.mdit_to_docutils.base import default_slugify

    slugs = {}
    for source in sources:
        for piece in split(source):
            if piece.message and piece.prefix.lstrip().startswith("#") and piece.message in translations:
                zh = heading_title(translations[piece.message])
                en = default_slugify(heading_title(piece.message))
                if slugs.get(zh, en) != en:
                    raise ValueError(f"two headings of a page translate to {zh!r}: give them different translations")
                slugs[zh] = en
    return slugs


def translate_page(path: Path, translations: dict[str, str]) -> str:
    """A page of the Chinese book: a notebook with its Markdown cells translated (code cells and outputs copied as
    they are), or a translated Markdown file."""
    if path.suffix != ".ipynb":
        return translate(path.read_text(), translations)
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = translate("".join(cell["source"]), translations).splitlines(keepends=True)
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def write_sources(out: Path = ZH_SRC) -> Path:
    """The Chinese book's sources: translated pages, the same configuration in Chinese, links to the shared assets."""
    if out.exists():
        shutil.rmtree(out)
    (out / "book").mkdir(parents=True)
    frame = load_translations(BOOK_CATALOGUE)
    slugs: dict[str, dict[str, str]] = {}
    for path in pages():
        translations = load_translations(path.stem)
        (out / path.relative_to(ROOT)).write_text(translate_page(path, translations))
        page = str(path.relative_to(ROOT).with_suffix(""))
        slugs[page] = heading_slugs(translations, [t for _, t in markdown_blocks(path)])
    for shared in ("book/images", "book/_static", "book/_ext", "references.bib", "node_modules"):
        if (ROOT / shared).exists():
            os.symlink(ROOT / shared, out / shared)
    (out / "zh_slugs.json").write_text(json.dumps(slugs, ensure_ascii=False, indent=1))

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["title"] = frame.get(config["title"], config["title"])
    sphinx = config["sphinx"]
    sphinx["local_extensions"]["zh_headings"] = "book/_ext"
    sphinx["config"].update({
        "language": LOCALE,
        "myst_heading_slug_func": "zh_headings.english_slug",
        "cg_ui_text": {k: frame.get(v, v) for k, v in UI_TEXT.items()},
        "nb_code_prompt_show": frame.get(UI_TEXT["code_prompt_show"], UI_TEXT["code_prompt_show"]),
        "nb_code_prompt_hide": frame.get(UI_TEXT["code_prompt_hide"], UI_TEXT["code_prompt_hide"]),
        "cg_other_language": {"label": "English", "title": "Read this page in English", "prefix": "../",
                              "hreflang": "en"},
    })
    (out / "_config.yml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for part in toc["parts"]:
        part["caption"] = frame.get(part["caption"], part["caption"])
    (out / "_toc.yml").write_text(yaml.safe_dump(toc, allow_unicode=True, sort_keys=False))
    return out


def build(out_html: Path = ZH_HTML, sources: Path = ZH_SRC) -> float:
    """Build the Chinese site with -W into out_html; returns the build's seconds."""
    write_sources(sources)
    start = time.perf_counter()
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", "-W", "-n",
               "--keep-going", str(sources)]
    subprocess.run(command, check=True)
    if out_html.exists():
        shutil.rmtree(out_html)
    shutil.copytree(sources / "_build" / "html", out_html)
    return time.perf_counter() - start


def export(name: str) -> str:
    """A catalogue as numbered blocks, "### N" then the message (and "### N zh" then its translation, if any), the
    form ``import`` reads back: a translator writes "### N" and the translation on the lines below, with no escaping."""
    out = []
    for n, entry in enumerate(e for e in polib.pofile(str(catalogue_path(name))) if not e.obsolete):
        out.append(f"### {n}\n{entry.msgid}\n")
        if entry.msgstr:
            out.append(f"### {n} zh{' (fuzzy)' if entry.fuzzy else ''}\n{entry.msgstr}\n")
    return "\n".join(out)


def import_translations(name: str, text: str) -> int:
    """Write the translations of a file of "### N" blocks (numbers as ``export`` gives them) into a catalogue;
    each translation is joined into one line. Returns how many were written."""
    path = catalogue_path(name)
    po = polib.pofile(str(path), wrapwidth=0)
    entries = [e for e in po if not e.obsolete]
    blocks = re.split(r"^### (\d+)[^\n]*\n", text, flags=re.MULTILINE)
    written = 0
    for number, body in zip(blocks[1::2], blocks[2::2]):
        translation = " ".join(line.strip() for line in body.strip().splitlines() if line.strip())
        if not translation:
            continue
        entry = entries[int(number)]
        entry.msgstr = translation
        if entry.fuzzy:
            entry.flags.remove("fuzzy")
            entry.previous_msgid = None
        written += 1
    path.write_text(str(po))
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["update", "status", "check", "build", "sources", "export", "import"])
    parser.add_argument("catalogue", nargs="?", help="export/import: a catalogue's name, e.g. dcgan (update: only it)")
    parser.add_argument("file", nargs="?", help="import: the file of translations")
    parser.add_argument("--html", type=Path, default=ZH_HTML, help="build: where the Chinese site goes")
    parser.add_argument("--sources", type=Path, default=ZH_SRC, help="build: where its sources are written")
    args = parser.parse_args(argv)
    if args.command == "export":
        print(export(args.catalogue))
        return 0
    if args.command == "import":
        print(f"{import_translations(args.catalogue, Path(args.file).read_text())} translations written")
        return 0
    if args.command == "update":
        for name, counts in update([args.catalogue] if args.catalogue else None).items():
            print(f"{name:16s} " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    elif args.command == "status":
        rows = status()
        for name, row in rows.items():
            print(f"{name:16s} " + ", ".join(f"{k} {v}" for k, v in row.items()))
        total = sum(r["messages"] for r in rows.values())
        done = sum(r["translated"] for r in rows.values())
        print(f"translated {done} of {total} messages ({100 * done / max(total, 1):.1f} %)")
    elif args.command == "check":
        errors = check()
        print("\n".join(errors) or "every translation keeps its message's code, formulas, links and citations")
        return 1 if errors else 0
    elif args.command == "sources":
        print(write_sources())
    else:
        seconds = build(args.html, args.sources)
        print(f"the Chinese book: {args.html} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
