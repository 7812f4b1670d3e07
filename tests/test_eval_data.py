"""The statement's eval sets hold what `eval/statement/README.md` promises: every answer string
is copied, with its case, from the paragraph its question names (the eval's hit is a
case-sensitive match) and occurs in no other paragraph, even ignoring case, so that a citation
is scored right only when it cites that paragraph; the conversation cases are well formed and
their halves never share a case."""

import json
from functools import cache

import pytest

from ctqa.chunking import paragraph_spans
from ctqa.config import PROJECT_ROOT
from ctqa.corpus import parse_document

STATEMENT = PROJECT_ROOT / "eval" / "statement"
DOC = "india-france-joint-working-group-on-counter-terrorism"
KINDS = {"first", "pronoun", "ellipsis", "what-about", "named", "unanswerable", "switch"}


@cache
def paragraphs() -> tuple[str, ...]:
    """The statement's paragraphs as ctqa splits them, numbered from 1 as the README says (the
    leading `date` marker is not text)."""
    path = PROJECT_ROOT / "seeds" / f"{DOC}.txt"
    doc = parse_document(path, path.read_bytes())
    found = tuple(doc.text[s.start : s.end] for s in paragraph_spans(doc.text, doc.body_start))
    assert len(found) == 8 and not found[0].startswith("date")
    return found


def rows(name: str) -> list[dict]:
    lines = (STATEMENT / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def questions() -> list[tuple[str, dict]]:
    """(where, question) for every question of the statement's sets, conversation turns too."""
    found = [
        (f"{name}:{r['id']}", r)
        for name in ("answerable.jsonl", "followups.jsonl")
        for r in rows(name)
    ]
    for case in rows("conversations.jsonl"):
        found += [(f"{case['id']}-{n}", t) for n, t in enumerate(case["turns"], start=1)]
    return found


@pytest.mark.parametrize(
    "where,question", questions(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_answer_is_in_its_paragraph_and_in_no_other(where, question):
    if not question.get("answerable", True):
        assert question.get("paragraph") is None and not question.get("answers")
        return
    assert question["answers"], where
    own = paragraphs()[question["paragraph"] - 1]
    for answer in question["answers"]:
        assert answer in own, (where, answer)
        holding = [
            n for n, text in enumerate(paragraphs(), start=1) if answer.lower() in text.lower()
        ]
        assert holding == [question["paragraph"]], (where, answer, holding)


def test_the_conversation_cases_are_well_formed():
    cases = rows("conversations.jsonl")
    ids = [case["id"] for case in cases]
    assert ids == [f"conv-{n:03d}" for n in range(1, len(cases) + 1)]
    asked = {"tuning": set(), "reported": set()}
    for case in cases:
        assert case["doc"] == DOC and case["half"] in asked
        kinds = [turn["kind"] for turn in case["turns"]]
        assert 2 <= len(kinds) <= 4 and kinds[0] == "first" and "first" not in kinds[1:], case["id"]
        assert set(kinds) <= KINDS, case["id"]
        for turn in case["turns"]:  # scored apart by `answerable`, counted by kind
            assert (turn["kind"] == "unanswerable") == (not turn["answerable"]), case["id"]
        asked[case["half"]].add(tuple(turn["question"] for turn in case["turns"]))
    assert not asked["tuning"] & asked["reported"]
    assert len(cases) >= 60 and sum(case["half"] == "reported" for case in cases) >= 30
