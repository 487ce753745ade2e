"""open_lth's data options, applied to a loaded Dataset's training split (after the validation hold-out).

    data = options.apply(data, train_subset=5000, random_labels=0.2, seed=0)

- train_subset=n: a fixed subset of n training examples, drawn by `seed` (the first n of a seeded permutation,
  kept in their original order); the same n and seed give the same examples in every run.
- random_labels=f: ceil(f * N) training examples, drawn by `seed`, get a label drawn uniformly from the classes
  (as open_lth's random_labels_fraction: a drawn label may equal the old one); the others keep theirs. Applied
  after the subset, so the fraction is of the examples trained on. Validation and test labels are never changed.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

# Distinct streams of one seed for the two options, so that changing one leaves the other's draw as it was.
_SUBSET_STREAM, _LABELS_STREAM = 1, 2


def subset_indices(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of the fixed training subset of `size` out of `n` examples."""
    return np.sort(np.random.default_rng([seed, _SUBSET_STREAM]).permutation(n)[:size])


def randomized(labels: np.ndarray, fraction: float, num_classes: int, seed: int) -> tuple:
    """(new labels, indices of the ceil(fraction * N) examples whose labels were redrawn)."""
    rng = np.random.default_rng([seed, _LABELS_STREAM])
    chosen = np.sort(rng.permutation(len(labels))[:math.ceil(fraction * len(labels))])
    out = np.array(labels, copy=True)
    out[chosen] = rng.integers(0, num_classes, size=len(chosen)).astype(out.dtype)
    return out, chosen


def apply(data, train_subset: int | None = None, random_labels: float | None = None, seed: int = 0):
    """`data` (lth_tf.data.pipelines.Dataset) with the options applied to its training split; `data` itself
    when there are none."""
    x, y, notes = data.x_train, data.y_train, []
    if train_subset is not None and train_subset < len(x):
        keep = subset_indices(len(x), train_subset, seed)
        x, y = x[keep], y[keep]
        notes.append(f"training subset of {train_subset}")
    if random_labels:
        y, chosen = randomized(y, random_labels, data.num_classes, seed)
        notes.append(f"{len(chosen)} training labels redrawn")
    if not notes:
        return data
    return dataclasses.replace(data, x_train=x, y_train=y, source=f"{data.source}; {', '.join(notes)}")
