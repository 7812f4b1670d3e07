"""What a question gets back: an `Answer`, with its `Citation`s quoting the statements.

>>> c = Citation(doc_id="s", title="S", date=None, source="s.txt", paragraph=1, start=0,
...              end=11, text="Hello world", highlight=(6, 11), score=None, answer=(6, 11))
>>> c.sentence, c.answer_text
('world', 'world')
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Citation:
    """A cited passage: `text == statement file text[start:end]`; `highlight` is the
    (start, end) of the answering sentence and `answer` that of the answer span the reader
    marked in it (None with the reader off), in the same coordinates. `score` is the reader's
    probability that the passage answers, or with the reader off retrieval's score (None for a
    passage past those the reader read, when `k` is larger)."""

    doc_id: str
    title: str
    date: str | None
    source: str
    paragraph: int
    start: int
    end: int
    text: str
    highlight: tuple[int, int]
    score: float | None
    answer: tuple[int, int] | None = None

    @property
    def answer_text(self) -> str | None:
        """The answer span's words."""
        if self.answer is None:
            return None
        return self.text[self.answer[0] - self.start : self.answer[1] - self.start]

    @property
    def sentence(self) -> str:
        """The answering sentence."""
        return self.text[self.highlight[0] - self.start : self.highlight[1] - self.start]


@dataclass(frozen=True)
class Answer:
    """A reply: citations best first, or `abstained=True` and none. `text` is Markdown.
    `nearest` holds the closest passages when abstaining, which do not answer."""

    question: str
    query: str
    citations: list[Citation]
    abstained: bool
    text: str
    confidence: float = 0.0
    nearest: list[Citation] = field(default_factory=list)
