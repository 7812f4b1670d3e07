"""Thumbs up and down on replies, appended to a JSON-lines file, one whole line per vote."""

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .results import Citation


@dataclass(frozen=True)
class Turn:
    """One exchange as the feedback log records it; `message` is the reply's index in the chat."""

    message: int
    question: str
    query: str
    abstained: bool
    citations: tuple[Citation, ...]
    error: str | None = None


class FeedbackLog:
    """Appends votes on replies to a JSON-lines file, one whole line per vote."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, turn: Turn, vote: str) -> dict:
        """Append one vote on `turn`; returns the record written."""
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "vote": vote,
            "question": turn.question,
            "query": turn.query,
            "abstained": turn.abstained,
            "error": turn.error,
            "citations": [] if turn.abstained else _places(turn.citations),
            "nearest": _places(turn.citations) if turn.abstained else [],
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
        return entry


def _places(citations: Iterable[Citation]) -> list[dict]:
    return [
        {"doc": c.doc_id, "paragraph": c.paragraph, "start": c.start, "end": c.end}
        for c in citations
    ]
