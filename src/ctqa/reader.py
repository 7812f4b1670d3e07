"""The reader: a cross-encoder trained in ctqa (`train.py`) that reads the question against each
passage retrieval proposes. For each it gives a logit that the passage answers, and the answer's
span in it, SQuAD 2.0 style. It runs on ONNX Runtime; torch is never imported here.

The model ships in `src/ctqa/models/`: `reader.onnx` (float32 without the word embeddings it
shares with the bundled MiniLM, or int8 when that keeps the tuning figures), and `reader.json`,
its record: the file's sha256 (checked on every load), the training run, and the weights and
threshold chosen on the tuning split that turn its scores into an order and an abstention
(`Calibration`).

>>> reader = load_reader(threads=2)                                   # doctest: +SKIP
>>> r = reader.read("Who led the Indian delegation?", [passage])[0]  # doctest: +SKIP
>>> passage[r.span[0]:r.span[1]]                                     # doctest: +SKIP
'Mahaveer Singhvi'
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError
from .files import file_sha256

MODEL_FOLDER = Path(__file__).resolve().parent / "models"
RECORD_FORMAT = 1
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Question and passage word pieces read together, [CLS] and both [SEP] included.
MAX_PAIR_TOKENS = 320
# The longest answer span considered, in word pieces.
MAX_ANSWER_TOKENS = 40


@dataclass(frozen=True)
class Reading:
    """What the reader made of one passage: `logit` that it answers, and the best answer span
    (`span`: start, end in the passage's text) with its margin over "no answer" (`span_margin`,
    positive when the span beats [CLS])."""

    logit: float
    span: tuple[int, int]
    span_margin: float


@dataclass(frozen=True)
class Calibration:
    """How reader and retrieval scores become the answer probability of a passage,
    `sigmoid(reader * logit + span * span margin + retrieval * retrieval score + agreement *
    retrieval's agreement + bias)`, and below which probability of the first passage ctqa
    abstains. Chosen on the tuning split by `make model` (`calibrate.py`). The agreement is the
    share of the passages retrieval ranks first that come from the first one's statement or are
    about the same thing (`confidence.agreements`): a question the corpus does not answer
    scatters them."""

    reader: float
    span: float
    retrieval: float
    agreement: float
    bias: float
    abstain_below: float
    candidates: int  # passages the reader reads: the first ones retrieval proposes

    def probability(self, reading: Reading, retrieval_score: float, agreement: float) -> float:
        z = (
            self.reader * reading.logit
            + self.span * reading.span_margin
            + self.retrieval * retrieval_score
            + self.agreement * agreement
            + self.bias
        )
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


@dataclass(frozen=True)
class EncodedPair:
    """Word pieces of (question, passage), and each passage piece's character range."""

    ids: list[int]
    type_ids: list[int]
    offsets: list[tuple[int, int]]  # in the passage; (0, 0) for question and special pieces
    passage_from: int  # index of the first passage piece


def pair_tokenizer(folder: Path | None = None, max_tokens: int = MAX_PAIR_TOKENS):
    """MiniLM's tokenizer set to read (question, passage) pairs, cutting only the passage."""
    from tokenizers import Tokenizer

    from .minilm import model_dir

    tokenizer = Tokenizer.from_file(str((folder or model_dir()) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens, strategy="only_second")
    return tokenizer


def encode_pair(tokenizer, question: str, passage: str) -> EncodedPair:
    """One pair as the reader reads it."""
    encoding = tokenizer.encode(question, passage)
    sequence = encoding.sequence_ids
    offsets = [o if s == 1 else (0, 0) for o, s in zip(encoding.offsets, sequence, strict=True)]
    first = sequence.index(1) if 1 in sequence else len(sequence) - 1
    return EncodedPair(encoding.ids, encoding.type_ids, offsets, first)


def batch_arrays(pairs: list[EncodedPair]) -> dict[str, np.ndarray]:
    """The model's inputs for `pairs`, padded to the longest."""
    width = max(len(p.ids) for p in pairs)
    ids = np.zeros((len(pairs), width), dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for row, p in enumerate(pairs):
        ids[row, : len(p.ids)] = p.ids
        types[row, : len(p.ids)] = p.type_ids
        mask[row, : len(p.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def best_span(
    start: np.ndarray, end: np.ndarray, first: int, last: int, longest: int = MAX_ANSWER_TOKENS
) -> tuple[int, int, float]:
    """(start piece, end piece, score) of the best span in pieces `first..last` inclusive:
    start before end, at most `longest` pieces.

    >>> best_span(np.array([0, 1, 5, 0.]), np.array([0, 0, 1, 4.]), 1, 3)
    (2, 3, 9.0)
    """
    s = start[first : last + 1]
    e = end[first : last + 1]
    scores = s[:, None] + e[None, :]
    n = len(s)
    rows, cols = np.indices((n, n))
    scores = np.where((cols >= rows) & (cols - rows < longest), scores, -np.inf)
    flat = int(np.argmax(scores))
    i, j = divmod(flat, n)
    return first + i, first + j, float(scores[i, j])


def readings(
    outputs: list[np.ndarray], pairs: list[EncodedPair], longest: int = MAX_ANSWER_TOKENS
) -> list[Reading]:
    """`Reading`s from the model's outputs (answer logits, start and end logits) for `pairs`."""
    logits, starts, ends = outputs
    found = []
    for row, p in enumerate(pairs):
        last = len(p.ids) - 2  # the final [SEP] is no answer
        i, j, score = best_span(starts[row], ends[row], p.passage_from, last, longest)
        null = float(starts[row][0] + ends[row][0])
        found.append(Reading(float(logits[row]), (p.offsets[i][0], p.offsets[j][1]), score - null))
    return found


class Reader:
    """The loaded reader: `read(question, passages)` gives one `Reading` per passage;
    `calibration` turns readings into an order and an abstention (None while calibrating).
    With `workers` above 1, that many passages are read at once, each by one run of the session
    (ONNX Runtime runs one session from several threads), from a pool that every question asked
    of this reader shares: together they read at most `workers` passages at a time."""

    def __init__(
        self, session, tokenizer, calibration: Calibration | None = None, workers: int = 1
    ):
        self.session = session
        self.tokenizer = tokenizer
        self.calibration = calibration
        self._pool = None
        if workers > 1:
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="ctqa-reader")

    def read(self, question: str, passages: list[str]) -> list[Reading]:
        """One `Reading` per passage. Each passage is read on its own: a batch is padded to its
        longest pair, and on a CPU reading the padding costs more than batching saves
        (`make bench` compares them); the readings are the same."""
        pairs = [encode_pair(self.tokenizer, question, text) for text in passages]
        runs = map(self._run, pairs) if self._pool is None else self._pool.map(self._run, pairs)
        return [readings(outputs, [pair])[0] for pair, outputs in zip(pairs, runs, strict=True)]

    def read_padded(self, question: str, passages: list[str]) -> list[Reading]:
        """`read` as one batch padded to its longest pair, in one run of the session: how the
        reader read before commit 93cb315, the baseline `make bench` compares `read` with."""
        pairs = [encode_pair(self.tokenizer, question, text) for text in passages]
        return readings(self.session.run(None, batch_arrays(pairs)), pairs) if pairs else []

    def _run(self, pair: EncodedPair) -> list[np.ndarray]:
        return self.session.run(None, batch_arrays([pair]))


def read_record(folder: Path = MODEL_FOLDER) -> dict:
    """The shipped reader's record, or `ModelError` saying what to do."""
    path = folder / "reader.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"the reader's record {path} is unreadable ({exc}); restore it with "
            "`git checkout src/ctqa/models` or retrain with `make model`."
        ) from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise ModelError(
            f"{path} is not a reader record of format {RECORD_FORMAT}; run `make model`."
        )
    return record


def minilm_tensors(weights: Path, names) -> dict[str, np.ndarray]:
    """Tensors of the bundled MiniLM's `model.safetensors`, read without torch."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="numpy") as f:
        return {name: f.get_tensor(name) for name in names}


def open_session(path: Path, threads: int, shared: tuple[str, ...] | list[str] = ()):
    """An ONNX Runtime session of a reader file (unchecked: `load_reader` checks). `shared`
    names weights the file leaves out, taken from the verified bundled MiniLM."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("onnxruntime is not installed; run `make run` to install it.") from None
    source = str(path)
    if shared:
        import onnx
        from onnx import numpy_helper

        from .minilm import model_dir, verified_weights

        model = onnx.load(source)
        tensors = minilm_tensors(verified_weights(model_dir()), shared)
        model.graph.initializer.extend(numpy_helper.from_array(t, n) for n, t in tensors.items())
        source = model.SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle worker threads sleep instead of spinning: on a shared 2-core machine spinning takes
    # the core another process (or the chat server) needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime reports a damaged file in many shapes
        raise ModelError(f"{path} cannot be loaded by onnxruntime ({exc}).") from exc


def load_reader(threads: int, folder: Path = MODEL_FOLDER, side_by_side: bool = True) -> Reader:
    """The shipped reader, after checking its file against the sha256 its record pins. It reads
    `threads` passages side by side, each on one thread; with `side_by_side` off, one passage at
    a time on `threads` threads."""
    record = read_record(folder)
    path = folder / record["file"]
    if not path.is_file():
        raise ModelError(
            f"the reader's weights {path} are missing; restore them or run `make model`."
        )
    actual = file_sha256(path)
    if actual != record["sha256"]:
        raise ModelError(
            f"{path} has sha256 {actual[:12]}…, not the {record['sha256'][:12]}… its record "
            "pins; restore it with `git checkout src/ctqa/models` or retrain with `make model`."
        )
    calibration = Calibration(**record["calibration"])
    shared = record.get("export", {}).get("shared", ())
    # Side by side is the default: a question's few short pairs keep the cores busier that way
    # than one run on every core does (`make bench` compares them).
    if not side_by_side:
        return Reader(open_session(path, threads, shared), pair_tokenizer(), calibration)
    session = open_session(path, 1, shared)
    return Reader(session, pair_tokenizer(), calibration, workers=threads)


def rerank(
    retrieval_scores: list[float],
    found: list[Reading],
    calibration: Calibration,
    agreement: float = 1.0,
) -> list[tuple[int, float]]:
    """(position in retrieval's order, answer probability) of each read passage, best first.

    >>> c = Calibration(1.0, 0.0, 0.0, 0.0, 0.0, abstain_below=0.5, candidates=2)
    >>> [i for i, _ in rerank([0.9, 0.5], [Reading(-2.0, (0, 1), 0), Reading(3.0, (0, 1), 0)], c)]
    [1, 0]
    """
    probabilities = [
        calibration.probability(r, s, agreement)
        for r, s in zip(found, retrieval_scores, strict=True)
    ]
    order = sorted(range(len(found)), key=lambda i: -probabilities[i])
    return [(i, probabilities[i]) for i in order]
