"""A weighted logistic regression by Newton's method: how the tuning data's signals become one
probability (the reader's calibration, the follow-up rule)."""

from __future__ import annotations

import numpy as np


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None, l2: float = 1e-3
) -> np.ndarray:
    """Weights (last one the bias) of a weighted logistic regression, by Newton's method.

    >>> w = fit_logistic(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))
    >>> bool(w[0] > 0)
    True
    """
    x = np.hstack([features, np.ones((len(features), 1))])
    s = np.ones(len(x)) if weights is None else weights
    w = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -60, 60)))
        gradient = x.T @ (s * (p - labels)) + l2 * w
        hessian = (x * (s * p * (1 - p))[:, None]).T @ x + l2 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w
