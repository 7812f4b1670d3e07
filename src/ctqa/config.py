"""Settings: one frozen dataclass of defaults, each overridable by a `CTQA_*` variable.

>>> Settings().max_question_chars
1000
>>> import os; os.environ["CTQA_MAX_QUESTION_CHARS"] = "200"; Settings.from_env().max_question_chars
200
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# sha256 of the official all-MiniLM-L6-v2 model.safetensors
MODEL_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MODEL_DIM = 384
# The chat server: questions answered at once, and waiting, before a caller is told the app is
# busy. The model runs one question at a time (encoder.py); two at once overlap its work with the
# search. Here rather than in app.py so that `ctqa --help` shows them without importing Gradio.
CONCURRENCY = 2
QUEUE_SIZE = 64


@dataclass(frozen=True)
class Settings:
    """Defaults for every tunable; `Settings.from_env()` applies `CTQA_<NAME>` overrides."""

    corpus_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "seeds")
    index_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "embeddings")
    # Questions longer than this are refused: no real question needs more, and the
    # encoder would silently truncate past 256 word pieces anyway.
    max_question_chars: int = 1000
    max_history_turns: int = 50
    # Searches kept for the follow-ups of a chat (recent.py): a question with history searches
    # its last few earlier questions again, and gets those from here. 0 keeps none.
    recent_searches: int = 256
    max_k: int = 20
    # MiniLM reads at most 256 word pieces, [CLS] and [SEP] included.
    max_passage_tokens: int = 256
    encode_batch_size: int = 32
    # Candidates taken from each retriever before fusion.
    candidates: int = 50
    # How passages are ranked (see retrieval.py): "weighted" (shipped), "rrf", "dense" or
    # "lexical"; and the weights of "weighted" (`weight_lexical` weighs BM25 coverage), chosen
    # on SQuAD's training articles for how often the answer is among the passages the reader
    # reads (`make tune`, eval/tune.py), never on a reported set.
    fusion: str = "weighted"
    weight_dense: float = 0.4
    weight_unit: float = 0.2
    weight_lexical: float = 0.2
    # Added times the share of names in a passage when the question asks for names.
    weight_names: float = 0.1
    # Below this confidence the bot abstains: the weighted score of the first passage, less
    # `weight_disagreement` times the share of the 5 passages ranked first (of those searched)
    # that neither come from its statement nor have a cosine of at least `agreement_cosine`
    # with it. The threshold is chosen on the tuning split by the reader's rule (answer 95% of
    # each part's answerable questions; `make model` prints it as "retrieval alone, abstaining
    # below"); the penalty and the cosine on the tuning split too, for the most unanswerable
    # questions declined at that rule (`make tune-confidence`, eval/tune_confidence.py).
    abstain_below: float = 0.205
    weight_disagreement: float = 0.5
    agreement_cosine: float = 0.35
    # Whether a question leans on the one before it (conversation.py): leans when
    # follow_lean * lean - follow_gap * gap + follow_lift * lift + follow_bias > 0. A logistic
    # fit on the tuning half of eval/statement/conversations.jsonl and statement tuning
    # questions asked after unrelated ones; the bias is then the one that answers most tuning
    # follow-ups right while keeping at least 0.97 of those questions' first citations (`make
    # tune-followups`).
    follow_lean: float = 4.31
    follow_gap: float = 14.15
    follow_lift: float = 7.17
    follow_bias: float = -0.64
    # "off": retrieval alone, abstaining below `abstain_below` (shipped: on the reported sets the
    # reader did not improve on it, see README); "on": the trained reader reads the passages
    # retrieval proposes, orders them, marks the answer span and decides abstention with the
    # weights and threshold chosen on the tuning split (src/ctqa/models/reader.json).
    reader: str = "off"
    # Vector search: "flat" (exact), "ivf" (approximate: FAISS inverted lists over about
    # 4*sqrt(n) k-means cells, searching `nprobe_*` of them) or "auto" (IVF for an index of
    # at least `ivf_from` vectors). `make bench` prints IVF's recall@5 against exact search
    # at 100,000 passages beside its speed (README).
    vector_index: str = "auto"
    ivf_from: int = 50_000
    nprobe_passages: int = 256
    nprobe_units: int = 64
    # Thumbs up/down from the chat go here, outside the repository's tracked files.
    feedback_file: Path = field(
        default_factory=lambda: (
            Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state")
            / "ctqa"
            / "feedback.jsonl"
        )
    )
    # Threads of the encoder (ONNX Runtime or torch) and of FAISS; on a small machine all of
    # its cores, up to 4 (MiniLM on one question gains nothing past that).
    threads: int = field(default_factory=lambda: max(1, min(os.cpu_count() or 1, 4)))
    # "auto": ONNX Runtime, with PyTorch as the fallback; "onnx" or "torch" to force one.
    encoder_backend: str = "auto"

    def __post_init__(self):
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                _refuse(name, value, f"must be a whole number from {low:,} to {high:,}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and (
                math.isnan(value) or math.isinf(value) and f.name.startswith(WEIGHTS)
            ):
                # a threshold may be infinite (never abstain, never agree); a weight may not
                _refuse(f.name, value, "must be a finite number")
            if f.name in CHOICES and value not in CHOICES[f.name]:
                _refuse(f.name, value, f"must be one of {', '.join(CHOICES[f.name])}")

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Defaults, then `CTQA_*` environment variables, then explicit keyword overrides."""
        values = {}
        for f in fields(cls):
            raw = os.environ.get(f"CTQA_{f.name.upper()}")
            if raw is None:
                continue
            default = getattr(cls(), f.name)
            kind = Path if isinstance(default, Path) else type(default)
            if kind is Path and not raw.strip():
                _refuse(f.name, raw, "must name a folder or file")
            try:
                values[f.name] = kind(raw)
            except ValueError as exc:
                from .errors import CtqaError

                raise CtqaError(
                    f"CTQA_{f.name.upper()}={raw!r} is not a valid {type(default).__name__}; "
                    "fix or unset it."
                ) from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("corpus_dir", "index_dir", "feedback_file"):
            if key in values:
                values[key] = Path(values[key])
        return dataclasses.replace(cls(), **values)


# Whole-number settings and their ranges; numbers are never NaN, and weights are finite.
LIMITS = {
    "max_question_chars": (1, 1_000_000),
    "max_history_turns": (0, 1_000_000),
    "recent_searches": (0, 1_000_000),
    "max_k": (1, 1_000),
    "max_passage_tokens": (16, 256),  # MiniLM reads at most 256 word pieces
    "encode_batch_size": (1, 4_096),
    "candidates": (1, 100_000),
    "ivf_from": (1, 10**12),
    "nprobe_passages": (1, 1_000_000),
    "nprobe_units": (1, 1_000_000),
    "threads": (1, 256),
}
WEIGHTS = ("weight_", "follow_")
CHOICES = {"fusion": ("weighted", "rrf", "dense", "lexical")}


def _refuse(name: str, value, rule: str):
    from .errors import CtqaError

    raise CtqaError(f"{name} (CTQA_{name.upper()}) {rule}, not {value!r}; fix or unset it.")


def passive_openmp() -> None:
    """Let OpenMP's idle threads sleep instead of spinning, unless the user chose otherwise.

    torch and FAISS spin by default, and spinning threads take the cores from the work itself on
    a busy machine. OpenMP reads the setting once, so call this before importing either.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
