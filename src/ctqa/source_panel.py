"""The source panel's HTML: a whole statement, paragraphs numbered, the cited passage marked
and its answering sentence highlighted. Text is always escaped: a statement can hold anything.
"""

import html

from .chunking import paragraph_spans
from .render import around_answer
from .results import Citation

# Scoped to the source panel (gr.HTML css_template): the statement scrolls inside its own box so
# that showing a passage never moves the page away from the conversation.
SOURCE_CSS = """
.statement { max-height: 60vh; overflow-y: auto; padding: 0 0.75rem; line-height: 1.6; }
.statement h3 { margin: 0.5rem 0 0.25rem; }
.statement .meta { color: var(--body-text-color-subdued); margin: 0 0 0.75rem; }
.statement p { margin: 0 0 0.9rem; }
.statement .pn { color: var(--body-text-color-subdued); font-size: 0.85em; margin-right: 0.4em; }
.statement .cited { background: rgba(250, 204, 21, 0.18); border-radius: 3px; }
.statement mark { background: #fde047; color: #111; padding: 0 2px; border-radius: 3px; }
.statement.nearest mark { background: #d1d5db; }
.statement.nearest .cited { background: rgba(156, 163, 175, 0.15); }
.statement.nearest p.target { border-left-color: #9ca3af; }
.statement p.target { border-left: 3px solid #eab308; padding-left: 0.5rem; }
"""


# Runs in the browser when the panel loads: keep the highlighted passage in view inside its box.
SOURCE_JS = """
const show = () => {
  const box = element.querySelector('.statement');
  if (!box) return;
  const mark = box.querySelector('mark');
  box.scrollTop = mark ? Math.max(0, mark.offsetTop - box.offsetTop - box.clientHeight / 3) : 0;
};
watch('value', show);
show();
"""


def _safe(text: str) -> str:
    """HTML-escaped text that cannot be read as a template placeholder either (`${}`, `{{}}`)."""
    return html.escape(text).replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;")


def source_html(
    doc, citation: Citation | None = None, note: str = "", nearest: bool = False
) -> str:
    """The whole statement `doc`, paragraphs numbered; `citation`'s passage marked when given
    (in grey when `nearest`: a passage close to the question that does not answer it)."""
    head = f"<h3>{_safe(doc.title)}</h3>"
    meta = [f"dated {_safe(doc.date)}"] if doc.date else []
    if note:
        meta.append(_safe(note))
    if meta:
        head += f"<p class='meta'>{' · '.join(meta)}</p>"
    body = "".join(
        _paragraph_html(doc.text, number, span.start, span.end, citation)
        for number, span in enumerate(paragraph_spans(doc.text, doc.body_start), 1)
    )
    kind = "statement nearest" if nearest else "statement"
    return f"<div class='{kind}'>{head}{body}</div>"


def _paragraph_html(text: str, number: int, start: int, end: int, c: Citation | None) -> str:
    inside = c is not None and start <= c.start and c.end <= end
    if not inside:
        content = _safe(text[start:end])
    else:
        hs, he = c.highlight
        content = (
            _safe(text[start : c.start])
            + "<span class='cited'>"
            + _safe(text[c.start : hs])
            + f"<mark>{_sentence_html(text, hs, he, c.answer)}</mark>"
            + _safe(text[he : c.end])
            + "</span>"
            + _safe(text[c.end : end])
        )
    target = " class='target'" if inside else ""
    return f"<p{target}><span class='pn'>¶{number}</span>{content}</p>"


def _sentence_html(text: str, start: int, end: int, answer: tuple[int, int] | None) -> str:
    """The answering sentence, its answer span (when inside it) in bold."""
    parts = around_answer(text, start, end, answer)
    if parts is None:
        return _safe(text[start:end])
    before, span, after = (_safe(p) for p in parts)
    return f"{before}<b>{span}</b>{after}"
