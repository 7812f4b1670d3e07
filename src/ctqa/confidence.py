"""Retrieval's confidence that its first passage answers, which decides abstention: the first
passage's score, less a penalty when the passages ranked next disagree with it."""

from __future__ import annotations

import numpy as np


def agreements(doc_ids: list[str], vectors: np.ndarray, cut_off: float) -> np.ndarray:
    """Which passages agree with which: from the same statement, or about the same thing (cosine
    of their normalised `vectors` at least `cut_off`). A question the corpus answers draws its
    nearest passages from one statement or subject; one it does not answer scatters them over
    whatever shares a word or two with it.

    >>> agreements(["a", "a", "b"], np.eye(3, dtype=np.float32), 0.4)[0].tolist()
    [True, True, False]
    """
    docs = np.array(doc_ids)
    return (docs[:, None] == docs[None, :]) | (vectors @ vectors.T >= cut_off)


def confidence_of(first_score: float, agreement: float, weight_disagreement: float) -> float:
    """The confidence that decides abstention: the first passage's weighted score, less
    `weight_disagreement` times the share of the passages ranked first that disagree with it."""
    return first_score - weight_disagreement * (1.0 - agreement)
