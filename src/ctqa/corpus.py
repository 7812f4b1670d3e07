"""Statements on disk to `Document`s.

A statement is a UTF-8 `*.txt` file. Paragraphs are separated by blank lines. An optional
leading marker `date YYYY-MM-DD` is the document's date, not text to cite. The title comes
from the file name: `india-france-joint-working-group-on-counter-terrorism.txt` is
"India France Joint Working Group on Counter Terrorism".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import CorpusError

DATE_MARKER = re.compile(r"\A[\s\ufeff]*date[ \t]+(\d{4}-\d{2}-\d{2})\b[ \t]*\r?\n?[ \t]*")
SMALL_WORDS = frozenset(
    ["a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to", "vs", "with"]
)


@dataclass(frozen=True)
class Document:
    """One statement: `text` is the whole file as read with UTF-8; `body_start` skips the marker."""

    id: str
    title: str
    date: str | None
    source: str
    text: str
    sha256: str
    body_start: int = 0


def title_from_name(stem: str) -> str:
    """File stem to a readable title.

    >>> title_from_name("india-france-joint-working-group-on-counter-terrorism")
    'India France Joint Working Group on Counter Terrorism'
    >>> title_from_name("1973_oil_crisis")
    '1973 Oil Crisis'
    """
    words = [w for w in re.split(r"[-_\s]+", stem) if w]
    return " ".join(
        w if (i and w.lower() in SMALL_WORDS) or not w[0].islower() else w[0].upper() + w[1:]
        for i, w in enumerate(words)
    )


def parse_document(path: Path, data: bytes) -> Document:
    """Bytes of one statement file to a `Document`; raises `CorpusError` naming the file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded); "
            "save it as UTF-8 and try again."
        ) from None
    if "\x00" in text:
        raise CorpusError(f"{path} contains NUL bytes, so it is not a text file; remove it.")
    match = DATE_MARKER.match(text)
    date, body_start = (match.group(1), match.end()) if match else (None, 0)
    if not text[body_start:].strip():
        raise CorpusError(f"{path} has no text to cite; add the statement or remove the file.")
    return Document(
        id=path.stem,
        title=title_from_name(path.stem),
        date=date,
        source=str(path),
        text=text,
        sha256=hashlib.sha256(data).hexdigest(),
        body_start=body_start,
    )


def statement_paths(folder: Path) -> list[Path]:
    """The `*.txt` files of a corpus folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"{folder} is not a folder of statements; pass a folder of *.txt files.")
    paths = sorted(p for p in folder.glob("*.txt") if p.is_file())
    if not paths:
        raise CorpusError(f"{folder} holds no statements (*.txt files); add at least one.")
    return paths


def load_corpus(folder: Path) -> list[Document]:
    """Every statement in `folder`, sorted by file name."""
    documents = []
    for path in statement_paths(folder):
        try:
            path.name.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8, kept by Python as surrogates
            shown = path.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            raise CorpusError(
                f"{folder} holds a statement whose file name is not UTF-8 ({shown!r}); rename it."
            ) from None
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CorpusError(f"{path} cannot be read ({exc.strerror}); check it.") from None
        documents.append(parse_document(path.resolve(), data))
    return documents
