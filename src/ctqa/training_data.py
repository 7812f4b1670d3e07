"""Training and tuning data for the reader, from SQuAD 2.0 (`eval/squad-train/`).

The articles are split three ways, by article, so that nothing chosen on one part has seen it:
- training: 14 articles; the reader learns from their questions;
- tuning: 4 articles, indexed on their own; the weights and the threshold that turn the reader's
  scores into a ranking and an abstention are chosen on their questions;
- tuning outside: 2 more articles whose questions are asked of the tuning index (it should
  abstain on all of them).

A question becomes (question, passage) pairs: its own passage (the answer, or SQuAD 2.0's
adversarial no-answer); the passages that ctqa's retrieval ranks highest but that do not hold
an answer (the negatives the reader meets when it reads what retrieval proposes); and, when
`answer_removed`, its own passage with the sentences that hold the answer taken out: a passage
on the question's very topic, in its words, that no longer answers it, which is what a
near-topic unanswerable question looks like; and, when `swapped_names`, the question with one
name or number it shares with its passage replaced by another of its article that the passage
lacks, read against that passage (`swapped_pairs`): the same words, another claim, which is
how SQuAD 2.0's adversarial questions were written ("entity swap").
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import PROJECT_ROOT
from .evaluate import doc_key
from .lexical import fold, stopwords
from .reader import encode_pair

SQUAD_TRAIN = PROJECT_ROOT / "eval" / "squad-train"
# Where `make model` keeps its stages; the tuning scripts reuse its indexes.
DEFAULT_WORK = Path.home() / ".cache" / "ctqa" / "train"
TUNING_ARTICLES = ("IPod", "Normans", "Private_school", "Solar_energy")
TUNING_OUTSIDE = ("Harvard_University", "To_Kill_a_Mockingbird")
# Names (runs of capitalised words) and numbers, as `swapped_question` swaps them.
_CAPITALISED = r"[A-Z](?:[\w'’-]|\.(?=\w))*"
NAME = re.compile(rf"{_CAPITALISED}(?: {_CAPITALISED})*")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass(frozen=True)
class SquadQuestion:
    """One question of a SQuAD-format file; `paragraph` is 0-based in its article."""

    id: str
    title: str
    file: str
    paragraph: int
    question: str
    answers: tuple[str, ...]
    answerable: bool

    @property
    def doc(self) -> str:
        """The article it was asked on, as `evaluate.is_hit` matches it."""
        return self.title


@dataclass(frozen=True)
class Pair:
    """A question and a passage to read; `span` is the answer's (start, end) in `passage`, or
    None when the passage does not answer."""

    question_id: str
    question: str
    passage: str
    span: tuple[int, int] | None


def load_squad(path: Path) -> list[SquadQuestion]:
    """The questions of a SQuAD-format JSON-lines file."""
    questions = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                questions.append(
                    SquadQuestion(
                        id=row["id"],
                        title=row["title"],
                        file=row["file"],
                        paragraph=int(row["paragraph"]),
                        question=row["question"],
                        answers=tuple(row.get("answers", ())),
                        answerable=bool(row["answerable"]),
                    )
                )
    return questions


def split(questions: list[SquadQuestion]) -> dict[str, list[SquadQuestion]]:
    """Questions by part: "train", "tuning", "outside" (see the module's docstring)."""
    tuning = {doc_key(t) for t in TUNING_ARTICLES}
    outside = {doc_key(t) for t in TUNING_OUTSIDE}
    parts: dict[str, list[SquadQuestion]] = {"train": [], "tuning": [], "outside": []}
    for q in questions:
        key = doc_key(q.title)
        parts["tuning" if key in tuning else "outside" if key in outside else "train"].append(q)
    return parts


def corpus_of(questions: list[SquadQuestion], source: Path, folder: Path) -> Path:
    """A corpus folder holding the articles of `questions` (copied from `source`)."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {q.file for q in questions}
    for stale in folder.glob("*.txt"):
        if stale.name not in wanted:
            stale.unlink()
    for name in sorted(wanted):
        target = folder / name
        if not target.exists() or target.read_bytes() != (source / name).read_bytes():
            shutil.copyfile(source / name, target)
    return folder


def articles_bot(questions: list[SquadQuestion], part: str, work: Path, log=None):
    """A `Bot` over the articles `questions` were asked on, its corpus and index kept in
    `work` as `corpus-PART` and `index-PART`, so that `make model` and the tuning scripts build
    them once."""
    from .bot import Bot

    corpus = corpus_of(questions, SQUAD_TRAIN / "corpus", work / f"corpus-{part}")
    return Bot(corpus=corpus, index=work / f"index-{part}", log=log)


def answer_span(passage: str, answers: tuple[str, ...]) -> tuple[int, int] | None:
    """Where the first annotator's answer (else the next one's) first occurs in `passage`.

    >>> answer_span("Paris, in November 2021.", ("November", "2021"))
    (10, 18)
    """
    for answer in answers:
        at = passage.find(answer) if answer else -1
        if at >= 0:
            return at, at + len(answer)
    return None


def without_answer(sentences: list[str], answers: tuple[str, ...]) -> str | None:
    """The passage made of `sentences` without those that hold an answer; None when no
    sentence holds one, when fewer than two would be left, or when an answer still shows.

    >>> without_answer(["They met.", "It was in Paris.", "It rained.", "All left."], ("Paris",))
    'They met. It rained. All left.'
    """
    kept = [s for s in sentences if not any(a and a in s for a in answers)]
    if len(kept) == len(sentences) or len(kept) < 2:
        return None
    text = " ".join(kept)
    return None if any(a and a in text for a in answers) else text


def pairs_for(
    question: SquadQuestion,
    own: list[tuple[str, list[str]]],
    ranked: list[str],
    negatives: int,
    answer_removed: bool = False,
) -> list[Pair]:
    """The pairs of one question: `own` are the passages of its paragraph (text, sentences),
    `ranked` what retrieval proposes, best first. Own passages are read with their answer (or
    none: the adversarial questions), and, when `answer_removed`, once more without the
    sentences that hold it; up to `negatives` of the others that hold no answer string follow.
    """
    pairs = []
    for text, sentences in own:
        span = answer_span(text, question.answers) if question.answerable else None
        pairs.append(Pair(question.id, question.question, text, span))
        rest = without_answer(sentences, question.answers) if answer_removed and span else None
        if rest is not None:
            pairs.append(Pair(question.id, question.question, rest, None))
    own_texts = [text for text, _ in own]
    taken = 0
    for text in ranked:
        if taken == negatives:
            break
        if text in own_texts or any(a and a in text for a in question.answers):
            continue  # its own, or another passage that may well answer it
        pairs.append(Pair(question.id, question.question, text, None))
        taken += 1
    return pairs


def training_pairs(
    questions: list[SquadQuestion],
    bot,
    negatives: int,
    candidates: int,
    seed: int,
    answer_removed: bool = False,
) -> list[Pair]:
    """Pairs for every question (see `pairs_for`), its negatives drawn from the first
    `candidates` passages that `bot` (over the questions' own articles) ranks for it. Shuffled
    with `seed`."""
    index = bot.load().index
    by_paragraph: dict[tuple[str, int], list[tuple[str, list[str]]]] = {}
    for p in index.passages:
        sentences = [p.text[s.start - p.start : s.end - p.start] for s in p.sentences]
        by_paragraph.setdefault((doc_key(p.doc_id), p.paragraph), []).append((p.text, sentences))
    pairs = []
    for q in questions:
        own = by_paragraph.get((doc_key(q.title), q.paragraph + 1), [])
        ranking = bot.load().search(q.question, candidates)
        ranked = [hit.passage.text for hit in ranking.hits]
        pairs.extend(pairs_for(q, own, ranked, negatives, answer_removed))
    random.Random(seed).shuffle(pairs)
    return pairs


def encode_pairs(tokenizer, pairs: list[Pair]) -> tuple[list, np.ndarray]:
    """(encoded pairs, [label, start piece, end piece] per pair); an answer cut off by the
    token limit drops its pair."""
    kept, targets = [], []
    for pair in pairs:
        encoded = encode_pair(tokenizer, pair.question, pair.passage)
        if pair.span is None:
            kept.append(encoded)
            targets.append((0, 0, 0))
            continue
        a, b = pair.span
        pieces = range(encoded.passage_from, len(encoded.ids) - 1)
        starts = [i for i in pieces if encoded.offsets[i][0] <= a < encoded.offsets[i][1]]
        ends = [i for i in pieces if encoded.offsets[i][0] < b <= encoded.offsets[i][1]]
        if starts and ends and starts[0] <= ends[-1]:
            kept.append(encoded)
            targets.append((1, starts[0], ends[-1]))
    return kept, np.array(targets, dtype=np.int64).reshape(-1, 3)


def batches(encoded, size: int, rng: random.Random) -> list[list[int]]:
    """Pair indexes in batches of similar length (less padding), in a shuffled order."""
    order = list(range(len(encoded)))
    rng.shuffle(order)
    chunk = size * 50
    result = []
    for at in range(0, len(order), chunk):
        part = sorted(order[at : at + chunk], key=lambda i: len(encoded[i].ids))
        result.extend(part[i : i + size] for i in range(0, len(part), size))
    rng.shuffle(result)
    return result


def phrases(text: str) -> set[str]:
    """The names and numbers of `text` that `swapped_question` can swap in: names without
    their leading stopwords ("In", "The") or a possessive, and none that only starts a sentence.

    >>> sorted(phrases("In 1998 Destiny's Child signed with The Columbia Records. While it rose"))
    ['1998', 'Columbia Records', "Destiny's Child"]
    """
    found = set(NUMBER.findall(text))
    for match in NAME.finditer(text):
        name = _name(match.group())
        if name and (len(name.split()) > 1 or not _starts_sentence(text, match.start())):
            found.add(name)
    return found


def _name(phrase: str) -> str:
    """`phrase` without leading stopwords and a trailing possessive ('s)."""
    words = phrase.split()
    while words and fold(words[0]) in stopwords():
        words.pop(0)
    name = " ".join(words)
    return name[:-2] if name[-2:] in ("'s", "’s") else name


def _starts_sentence(text: str, at: int) -> bool:
    # a short look back, not the whole text before `at`: it runs for every name of an article
    before = text[max(0, at - 20) : at].rstrip()
    return not before or before[-1] in '.!?\n"“'


@lru_cache(maxsize=65536)
def _folded(phrase: str) -> tuple[str, frozenset[str]]:
    """`phrase` folded, and its folded words: each article phrase is compared with every
    question on its article."""
    folded = fold(phrase)
    return folded, frozenset(re.findall(r"\w+", folded))


def _kind(phrase: str) -> tuple[bool, int]:
    """Numbers are swapped for numbers of as many characters (years for years), names for names."""
    return (True, len(phrase)) if NUMBER.fullmatch(phrase) else (False, 0)


def swapped_question(
    question: str, passage: str, article: list[str], rng: random.Random
) -> str | None:
    """`question` with one name or number that `passage` holds replaced by one of `article`
    (its article's names and numbers, sorted) none of whose words `passage` holds: the passage
    no longer answers it. None when there is nothing to swap. The question's first word is never
    swapped (a capital that starts a question is no name).

    >>> passage = "Beyoncé left Destiny's Child in 2003."
    >>> swapped_question("When did Beyonce leave Destiny's Child?", passage,
    ...     ["Kelly Rowland", "Michelle"], random.Random(1))
    'When did Beyonce leave Kelly Rowland?'
    """
    inside, words = _folded(passage)
    asked = fold(question)
    own = []
    for match in [*NAME.finditer(question), *NUMBER.finditer(question)]:
        phrase = _name(match.group()) if NAME.fullmatch(match.group()) else match.group()
        if phrase and match.start() > 0 and _folded(phrase)[0] in inside:
            start = match.start() + match.group().index(phrase)
            own.append((start, start + len(phrase), phrase))
    rng.shuffle(own)
    for start, end, phrase in own:
        kind = _kind(phrase)
        others = [
            p
            for p in article
            if _kind(p) == kind and _folded(p)[0] not in asked and words.isdisjoint(_folded(p)[1])
        ]
        if others:
            return question[:start] + rng.choice(others) + question[end:]
    return None


def swapped_pairs(
    pairs: list[Pair], questions: list[SquadQuestion], corpus: Path, seed: int
) -> list[Pair]:
    """One no-answer pair for each pair that answers its question (`swapped_question` of the
    question against the same passage), in the order of `pairs`, drawn with `seed`."""
    by_id = {q.id: q for q in questions}
    articles: dict[str, list[str]] = {}
    rng = random.Random(seed)
    found = []
    for pair in pairs:
        question = by_id.get(pair.question_id)
        if pair.span is None or question is None:
            continue
        if question.file not in articles:
            text = (corpus / question.file).read_text(encoding="utf-8")
            articles[question.file] = sorted(phrases(text))
        swapped = swapped_question(pair.question, pair.passage, articles[question.file], rng)
        if swapped is not None:
            found.append(Pair(f"{pair.question_id}-swapped", swapped, pair.passage, None))
    return found
