"""How well a confidence tells answerable questions from unanswerable ones, over `ctqa eval`'s
reports: the ROC AUC, and the answer and abstention rates at every threshold (a picture).

>>> abstention_auc([0.9, 0.5], [0.5, 0.1])
0.875
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .evaluate import SetReport


def confidences(reports: list[SetReport]) -> tuple[list[float], list[float]]:
    """The confidences of the answerable questions, and of the rest (each question once)."""
    results = list({id(r): r for report in reports for r in report.results}.values())
    good = [r.confidence for r in results if r.answerable]
    bad = [r.confidence for r in results if not r.answerable]
    return good, bad


def abstention_auc(good: list[float], bad: list[float]) -> float:
    """ROC AUC of the confidence as a test of answerability: the chance that an answerable
    question's confidence (`good`) is above an unanswerable one's (`bad`), ties counting half.

    >>> abstention_auc([0.9, 0.5], [0.5, 0.1])
    0.875
    """
    import numpy as np

    bad_sorted = np.sort(bad)
    below = np.searchsorted(bad_sorted, good, "left")
    ties = np.searchsorted(bad_sorted, good, "right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (len(good) * len(bad)))


def abstention_aucs(reports: list[SetReport]) -> dict[str, float]:
    """`abstention_auc` of the answerable questions of all `reports` against the unanswerable
    ones of each report that has some, by report name."""
    good, _ = confidences(reports)
    found = {}
    for report in reports:
        _, bad = confidences([report])
        if good and bad:
            found[report.name] = abstention_auc(good, bad)
    return found


def abstention_curve(reports: list[SetReport], thresholds) -> list[tuple[float, float, float]]:
    """(threshold, answer rate on answerable, abstention rate on the rest) at each threshold."""
    good, bad = confidences(reports)
    return [
        (
            t,
            sum(c >= t for c in good) / max(1, len(good)),
            sum(c < t for c in bad) / max(1, len(bad)),
        )
        for t in thresholds
    ]


def plot_abstention(reports: list[SetReport], chosen: float, path: Path, title: str) -> Path:
    """PNG of answer rate and abstention rate against the abstention threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = [i / 200 for i in range(0, 201)]
    curve = abstention_curve(reports, thresholds)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot(thresholds, [c[1] for c in curve], label="answer rate (answerable questions)")
    ax.plot(thresholds, [c[2] for c in curve], label="abstention rate (unanswerable questions)")
    ax.axvline(chosen, color="grey", linestyle="--", label=f"shipped threshold {chosen:.2f}")
    ax.set_xlabel("abstention threshold on confidence")
    ax.set_ylabel("rate")
    ax.set_title(title)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
