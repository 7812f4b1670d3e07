"""The reader's model card, `READER.md`, written from its record by `make model`."""

from __future__ import annotations

from pathlib import Path

from .precision import recorded_precision
from .training_data import TUNING_ARTICLES, TUNING_OUTSIDE

TRAINING_ARTICLES = 14  # of the 20 in eval/squad-train/, the tuning ones set apart

FIGURES = (
    ("answered_and_right", "answered and right (Hit@1)"),
    ("hit_at_1", "first passage right"),
    ("answer_rate", "answer rate"),
    ("abstention_adversarial", "abstention, adversarial"),
    ("abstention_outside", "abstention, outside"),
    ("abstention_near-topic", "abstention, near-topic"),
    ("abstention_off-topic", "abstention, off-topic"),
    ("auc", "ROC AUC"),
    ("span_exact_match", "span EM"),
    ("span_f1", "span F1"),
)


def cells(figures: dict) -> str:
    """One table row's figures."""
    return " | ".join("-" if figures.get(k) is None else f"{figures[k]:.3f}" for k, _ in FIGURES)


def card_text(record: dict) -> str:
    """Markdown of the card."""
    t, c, tuning = record["training"], record["calibration"], record["tuning"]
    config = t["config"]
    by_n = tuning["by_candidates"]
    header = "| part | read | " + " | ".join(label for _, label in FIGURES) + " |"
    rows = [header, "|" + "---|" * (len(FIGURES) + 2)]
    for n, parts in by_n.items():
        for part, f in parts.items():
            rows.append(f"| {part} | {n} | {cells(f)} |")
    alone = tuning["retrieval_alone"]
    for part, f in alone["figures"].items():
        rows.append(f"| {part} | retrieval alone | {cells(f)} |")
    return "\n".join(
        [
            "# ctqa reader",
            "",
            "A cross-encoder that reads a question against a passage: a logit that the passage",
            "answers, and the answer's start and end (SQuAD 2.0 style, [CLS] for no answer).",
            "Written by `make model` (`python -m ctqa.train`); do not edit by hand.",
            "",
            "## Model",
            "- Base: the bundled all-MiniLM-L6-v2 (6 layers, 384 wide); its embeddings and first "
            f"{config['frozen_layers']} layers frozen, the other layers and two heads trained.",
            f"- Shipped: `{record['file']}` ({tuning['shipped']}, "
            f"{record['export']['shipped_bytes'] / 1e6:.1f} MB), sha256 "
            f"`{record['sha256']}`; int8 moved the tuning figures by {tuning['int8_moved']}.",
            "",
            "## Data",
            "- SQuAD 2.0 (CC BY-SA 4.0), `eval/squad-train/`: 20 Wikipedia articles. None is in",
            "  the reported SQuAD slice (`eval/squad/`).",
            f"- Tuning split, never trained on: {', '.join(TUNING_ARTICLES)} (indexed), and "
            f"{', '.join(TUNING_OUTSIDE)} (asked of that index: outside questions); and",
            "  `eval/statement-tuning/questions.jsonl`, questions on the statement written for",
            "  tuning (not the reported `eval/statement/` sets).",
            f"- Training: {trained_on(t)}, {t['pairs']} (question, passage) pairs,"
            f" {t['answer_pairs']} of them answering: each question with its own passage and the",
            f"  {config['negatives']} passages retrieval ranks highest (of {config['candidates']})"
            f" that hold no answer{''.join(extras(config))}.",
            "",
            "## Training",
            f"- Seed {config['seed']}, {t['steps']} steps of {config['batch_size']} pairs, "
            f"learning rate {config['learning_rate']}, {computed_in(config)}, torch {t['torch']}.",
            f"- Loss {t['first_loss']} over the first 20 steps, {t['last_loss']} over the last 20.",
            f"- {t['train_minutes']} min training (summed over resumed runs), {t['total_minutes']}"
            " min for this run of `make model` on this machine (pairs, training, export,"
            " calibration; a stage found done in the work folder is not redone).",
            "",
            "## Calibration (tuning split)",
            f"- Probability = sigmoid({c['reader']:.4f} × reader logit + {c['span']:.4f} × span"
            f" margin + {c['retrieval']:.4f} × retrieval score + {c['agreement']:.4f} × retrieval"
            f" agreement + {c['bias']:.4f}); abstain below {c['abstain_below']:.4f}; read"
            f" the first {c['candidates']} passages retrieval proposes.",
            f"- Retrieval alone, by the same rule: abstain below {alone['abstain_below']:.4f} on"
            " retrieval's confidence (`Settings.abstain_below`, used with `CTQA_READER=off`).",
            f"- Questions: {tuning['questions']}.",
            "",
            *rows,
            "",
        ]
    )


def trained_on(training: dict) -> str:
    """Which questions were trained on; a record from before `questions` was kept trained on
    all of the 14 training articles.

    >>> trained_on({"questions": 3260, "articles": 7})
    '3260 questions of 7 of the other 14 articles (`--limit`)'
    """
    articles = training.get("articles", TRAINING_ARTICLES)
    if articles == TRAINING_ARTICLES:
        return f"the other {TRAINING_ARTICLES} articles' questions"
    return (
        f"{training['questions']} questions of {articles} of the other {TRAINING_ARTICLES}"
        " articles (`--limit`)"
    )


def extras(config: dict) -> list[str]:
    """The no-answer pairs a recipe option adds, as the card's sentence goes on."""
    found = []
    if config.get("answer_removed"):
        found.append("; and its own passage without the sentences that hold the answer (no answer)")
    if config.get("swapped_names"):
        found.append(
            "; and each answering pair's question with a name or number of its passage swapped"
            " for another of its article (no answer)"
        )
    return found


def computed_in(config: dict) -> str:
    """How the training computed (a record from before `precision` was recorded: as then)."""
    if recorded_precision(config) == "bfloat16":
        return "bfloat16 autocast"
    return "float32 (the frozen layers' outputs kept in bfloat16)"


def write_card(folder: Path, record: dict) -> Path:
    path = folder / "READER.md"
    path.write_text(card_text(record), encoding="utf-8")
    return path
