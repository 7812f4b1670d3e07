"""The reply to a question, in Markdown: one renderer for every face.

`Answer.text` and the CLI use `reply(answer)`; the chat and its `/chat` API use
`reply(answer, mark=html_mark)`. The faces differ only in how they mark the answering sentence
inside each cited passage; the quoted sentence shows the reader's answer span in bold in both.

>>> escape_markdown("<b>*x*</b> [a](b)")
'&lt;b&gt;\\\\*x\\\\*&lt;/b&gt; \\\\[a\\\\](b)'
"""

from __future__ import annotations

import re
from collections.abc import Callable

MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
# Characters of a passage shown when it is listed as nearest but not answering.
SNIPPET_CHARS = 220
DECLINED = (
    "**The statements do not answer this question.** "
    "Nothing in them is close enough to quote as an answer."
)


def escape_markdown(text: str) -> str:
    """Text shown literally in Markdown: punctuation escaped, HTML made inert, whitespace single."""
    text = re.sub(r"\s+", " ", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


def bold(text: str) -> str:
    return f"**{text}**"


def html_mark(text: str) -> str:
    return f"<mark>{text}</mark>"


def reply(answer, mark: Callable[[str], str] = bold) -> str:
    """The reply to `answer` (an `Answer`): what was searched when it differs from the
    question, then the answering sentence quoted with the answer span in bold and the numbered
    citations; or the abstention and the nearest passages, marked as not answering."""
    lines = []
    if answer.query != answer.question:
        lines.append(f"_Searched for: {escape_markdown(answer.query)}_\n")
    if answer.abstained:
        lines.append(DECLINED)
        if answer.nearest:
            lines.append("\nNearest passages, shown for reference; they do **not** answer it:\n")
            lines.extend(nearest_line(i, c) for i, c in enumerate(answer.nearest, 1))
        return "\n".join(lines)
    lines.append(f"> {quote(answer.citations[0])}\n")
    lines.append("**Cited passages**\n")
    lines.extend(citation_line(i, c, mark) for i, c in enumerate(answer.citations, 1))
    return "\n".join(lines)


def around_answer(text: str, start: int, end: int, answer) -> tuple[str, str, str] | None:
    """`text[start:end]` (a sentence) cut at the answer span (before, span, after), or None
    when there is no span inside it.

    >>> around_answer("x Paris hosted it.", 2, 18, (2, 7))
    ('', 'Paris', ' hosted it.')
    """
    if answer is None or not start <= answer[0] < answer[1] <= end:
        return None
    return text[start : answer[0]], text[answer[0] : answer[1]], text[answer[1] : end]


def quote(c) -> str:
    """The citation's answering sentence, its answer span (when inside it) in bold.

    >>> from types import SimpleNamespace as C
    >>> quote(C(text="Paris hosted it.", start=10, highlight=(10, 26), answer=(10, 15)))
    '**Paris** hosted it.'
    """
    lo, hi = c.highlight[0] - c.start, c.highlight[1] - c.start
    answer = None if c.answer is None else (c.answer[0] - c.start, c.answer[1] - c.start)
    parts = around_answer(c.text, lo, hi, answer)
    if parts is None:
        return escape_markdown(c.text[lo:hi]).strip()
    before, span, after = (escape_markdown(p) for p in parts)
    return f"{before}{bold(span.strip())}{after}".strip()


def where(c) -> str:
    date = f", {c.date}" if c.date else ""
    return f"*{escape_markdown(c.title)}*{date}, paragraph {c.paragraph}"


def citation_line(number: int, c, mark: Callable[[str], str] = bold) -> str:
    """One numbered citation: where it is, and the passage with its answering sentence marked."""
    lo, hi = c.highlight[0] - c.start, c.highlight[1] - c.start
    before, sentence, after = (
        escape_markdown(p) for p in (c.text[:lo], c.text[lo:hi], c.text[hi:])
    )
    return f"{number}. {where(c)}: “{f'{before}{mark(sentence.strip())}{after}'.strip()}”"


def nearest_line(number: int, c) -> str:
    """A passage near the question that does not answer it, its sentence cut short."""
    sentence = c.sentence
    if len(sentence) > SNIPPET_CHARS:
        sentence = sentence[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"
    return f"{number}. {where(c)} (does not answer): “{escape_markdown(sentence)}”"
