"""The Chinese edition (scripts/i18n.py): messages split and put back exactly, catalogues current and complete, every
translation keeps its message's code and formulas, and the Chinese notebooks are the English ones with only their
Markdown translated. (tests/test_site.py builds and opens the Chinese site.)"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("i18n", ROOT / "scripts" / "i18n.py")
i18n = sys.modules["i18n"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(i18n)

SAMPLE = """# A title with `code`

A paragraph that runs
over two lines, with $x^2$ and a [link](other.ipynb#a-section).

```python
print("code is never a message")
```

$$
L = \\log 4
$$

- an item
  continued
- another item

| name | value |
| --- | --- |
| one cell | two cells |

```{admonition} Exercise 1
:class: tip
Write `q_sample`.
```

```{figure} images/x.svg
:alt: A diagram of the pipeline
:width: 100%

The caption.
```

```{glossary}
term · 术语
  The definition of the term.
```

**A claim.**
: *Correction.* The fix,
  on two lines.

(a-label)=
## 已经是中文的标题
"""


def test_split_finds_the_messages_and_puts_the_source_back_exactly():
    pieces = i18n.split(SAMPLE)
    assert "".join(p.original for p in pieces) == SAMPLE
    assert [p.message for p in pieces if p.message] == [
        "A title with `code`",
        "A paragraph that runs over two lines, with $x^2$ and a [link](other.ipynb#a-section).",
        "an item continued", "another item",
        "| name | value |", "| one cell | two cells |",
        "Exercise 1", "Write `q_sample`.",
        "A diagram of the pipeline", "The caption.",
        "The definition of the term.",
        "**A claim.**", "*Correction.* The fix, on two lines.",
    ]


def test_translate_replaces_messages_and_keeps_everything_else():
    translated = i18n.translate(SAMPLE, {"an item continued": "一项", "Exercise 1": "练习 1",
                                         "The definition of the term.": "术语的定义。",
                                         "*Correction.* The fix, on two lines.": "*更正。* 修正。"})
    assert "- 一项\n- another item\n" in translated
    assert "```{admonition} 练习 1\n:class: tip\n" in translated
    assert "term · 术语\n  术语的定义。\n```" in translated
    assert "**A claim.**\n: *更正。* 修正。\n" in translated
    assert 'print("code is never a message")' in translated and "L = \\log 4" in translated


def test_every_page_splits_back_into_itself():
    for path in i18n.pages():
        for where, text in i18n.markdown_blocks(path):
            assert "".join(p.original for p in i18n.split(text)) == text, where


def test_the_checker_catches_a_changed_formula_code_or_link():
    msgid = "The loss $L_D + L_G$ of `gan_step`, see [there](dcgan.ipynb#bug-8)."
    assert i18n.problems(msgid, "损失 $L_D + L_G$ 来自 `gan_step`，见[那里](dcgan.ipynb#bug-8)。") == []
    assert any("formula" in p for p in i18n.problems(msgid, "损失 $L_D+L_G$ 来自 `gan_step`，见[那里](dcgan.ipynb#bug-8)。"))
    assert any("inline code" in p for p in i18n.problems(msgid, "损失 $L_D + L_G$ 来自 gan_step，见[那里](dcgan.ipynb#bug-8)。"))
    assert any("link" in p for p in i18n.problems(msgid, "损失 $L_D + L_G$ 来自 `gan_step`，见[那里](dcgan.ipynb)。"))
    assert any("table" in p for p in i18n.problems("| a | b |", "| 甲 |"))


def test_catalogues_are_current():
    """Every message of the English pages is in its catalogue and nothing else is: after an edit of the English text,
    `python scripts/i18n.py update` brings them in line (and marks edited messages fuzzy)."""
    for name, messages in i18n.all_messages().items():
        path = i18n.catalogue_path(name)
        assert path.exists(), f"{path} is missing: run python scripts/i18n.py update"
        entries = [e.msgid for e in i18n.polib.pofile(str(path)) if not e.obsolete]
        assert entries == list(messages), f"{path.name} is out of date: run python scripts/i18n.py update"


def test_every_message_is_translated_and_none_is_fuzzy():
    rows = i18n.status()
    total, done = sum(r["messages"] for r in rows.values()), sum(r["translated"] for r in rows.values())
    print(f"translation coverage: {done} of {total} messages ({100 * done / total:.1f} %)")
    todo = {name: r for name, r in rows.items() if r["untranslated"] or r["fuzzy"]}
    assert not todo, f"untranslated or fuzzy messages (python scripts/i18n.py status): {todo}"


def test_every_translation_keeps_code_formulas_links_and_citations():
    assert i18n.check() == []


def test_chinese_notebooks_differ_from_the_english_only_in_their_markdown(tmp_path):
    out = i18n.write_sources(tmp_path / "zh")
    slugs = json.loads((out / "zh_slugs.json").read_text())
    for path in i18n.pages():
        zh = out / path.relative_to(ROOT)
        if path.suffix == ".md":
            assert zh.read_text() != path.read_text()
            continue
        english, chinese = json.loads(path.read_text()), json.loads(zh.read_text())
        assert english["metadata"] == chinese["metadata"]
        assert len(english["cells"]) == len(chinese["cells"])
        changed = 0
        for a, b in zip(english["cells"], chinese["cells"]):
            if a["cell_type"] == "markdown":
                assert b["cell_type"] == "markdown" and a.get("id") == b.get("id")
                changed += a["source"] != b["source"]
            else:
                assert a == b, f"{path.name}: cell {a.get('id')} differs"   # code, outputs, metadata byte for byte
        assert changed, f"{path.name}: no Markdown cell was translated"
        # each translated heading keeps its English anchor
        headings = [p for _, t in i18n.markdown_blocks(path) for p in i18n.split(t)
                    if p.message and p.prefix.lstrip().startswith("#")]
        assert len(slugs[str(path.relative_to(ROOT).with_suffix(""))]) == len({h.message for h in headings})
    config = (out / "_config.yml").read_text()
    assert "language: zh_CN" in config and "zh_headings.english_slug" in config


@pytest.mark.parametrize("title,expected", [("Bug 8: a log that **no** GAN can print", "bug-8-a-log-that-no-gan-can-print"),
                                            ("The loss $L_D$ of `gan_step`", "the-loss--of-gan_step")])
def test_english_anchor_matches_myst(title, expected):
    from myst_parser.mdit_to_docutils.base import default_slugify
    assert default_slugify(i18n.heading_title(title)) == expected
