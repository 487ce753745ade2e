"""The magnitude-ranking rule shared by the tf_keras path (lth_tf.pruning.masks) and the Keras 3 path
(lth_tf.keras3): numpy only, so neither path imports the other's Keras.

A layer with n surviving weights pruned at rate p keeps ``keep_count(n, 1 - p) = max(1, round(n * (1 - p)))``
(Python's round, halves to even): a pruned layer never loses its last weight. ``keep_top`` picks the kept
entries: the largest |w| among the eligible (surviving) ones, ties broken by position.
"""
from __future__ import annotations

import numpy as np


def keep_count(n: int, fraction: float) -> int:
    """How many of `n` weights a pruned layer keeps at `fraction`: max(1, round(n * fraction)) (0 only if n is 0)."""
    return min(n, max(1, int(round(n * fraction)))) if n > 0 else 0


def keep_top(weights: np.ndarray, eligible: np.ndarray, keep: int) -> np.ndarray:
    """Mask of the `keep` largest |weights| among `eligible` entries (ties broken by position, deterministic)."""
    score = np.where(eligible, np.abs(weights), -1.0).ravel()
    mask = np.zeros(score.size, bool)
    mask[np.argsort(-score, kind="stable")[:keep]] = True
    return mask.reshape(weights.shape)
