"""The results directory's instability pairs (lth_tf.instability): each trained copy and each pair's result.

    round_<r>/instability/copy_<i>_weights.npz, copy_<i>_curve.csv, copy_<i>.json   each trained copy (json last)
    round_<r>/instability/masks.npz, result.json    the pair's mask, then its path and instability (json last)

`PairStore` holds these methods of `lth_tf.experiment.store.Store` (its base class); the layout is the store's.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os

from lth_tf.experiment.files import (CURVE_COLUMNS, DamagedFileError, _csv_bytes, _npz_bytes, atomic_write,
                                     describe_error, load_npz, refuse_links)


class PairStore:
    """Store's methods for instability pairs; they use its round_dir and _units."""

    def _write(self, path: str, data: bytes) -> None:
        """atomic_write, refused (StoreError) where a symbolic link inside the results directory would lead it
        elsewhere."""
        refuse_links(self.root, path)
        atomic_write(path, data)

    def pair_dir(self, trial: int, variant: str, round_: int) -> str:
        return os.path.join(self.round_dir(trial, variant, round_), "instability")

    def save_copy(self, trial, variant, round_, copy: int, *, weights, curve, row) -> None:
        """One trained copy of a pair; copy_<i>.json goes last, so its presence means "trained"."""
        directory = self.pair_dir(trial, variant, round_)
        self._write(os.path.join(directory, f"copy_{copy}_weights.npz"), _npz_bytes(weights))
        self._write(os.path.join(directory, f"copy_{copy}_curve.csv"), _csv_bytes(curve, CURVE_COLUMNS))
        self._write(os.path.join(directory, f"copy_{copy}.json"), json.dumps(row, sort_keys=True).encode())

    def pair_advice(self, trial, variant, round_) -> str:
        return (f"restore it from a copy, or delete '{self.pair_dir(trial, variant, round_)}' to train that "
                "pair again")

    def read_json(self, path: str, advice: str, check=None):
        """The JSON in `path`, or None if there is none; DamagedFileError if it cannot be read (or `check`,
        given the value, raises ValueError)."""
        try:
            with open(path) as f:
                value = json.load(f)
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
            if check is not None:
                check(value)
            return value
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise DamagedFileError(path, describe_error(e), advice) from None

    def load_copy(self, trial, variant, round_, copy: int) -> dict | None:
        """{"weights", "row"} of a trained copy, or None if it is not finished; DamagedFileError if its files
        are damaged (a trained copy is never silently trained again)."""
        directory, advice = self.pair_dir(trial, variant, round_), self.pair_advice(trial, variant, round_)
        row = self.read_json(os.path.join(directory, f"copy_{copy}.json"), advice)
        if row is None:
            return None
        return {"weights": load_npz(os.path.join(directory, f"copy_{copy}_weights.npz"), advice), "row": row}

    def save_pair(self, trial, variant, round_, result: dict, masks: dict) -> None:
        """The pair's masks, then its result.json (last: its presence means "finished")."""
        self._write(os.path.join(self.pair_dir(trial, variant, round_), "masks.npz"), _npz_bytes(masks))
        self._write(os.path.join(self.pair_dir(trial, variant, round_), "result.json"),
                     json.dumps(result, sort_keys=True).encode())

    def load_pair(self, trial, variant, round_) -> dict | None:
        """The pair's stored result (path and instability), or None if it is not finished; DamagedFileError if
        its result.json is damaged."""
        def check(row):
            if (row.get("trial"), row.get("variant"), row.get("round")) != (trial, variant, round_):
                raise ValueError(f"not the result of trial {trial} {variant} round {round_}")
        return self.read_json(os.path.join(self.pair_dir(trial, variant, round_), "result.json"),
                               self.pair_advice(trial, variant, round_), check)

    def finished_pairs(self, trials=None) -> list:
        """(trial, variant, round) of every pair with a result.json (of `trials`, default all)."""
        return [key for key in self._units(os.path.join("instability", "result.json"))
                if trials is None or key[0] in trials]

    def trained_copies(self, trials=None) -> list:
        """(trial, variant, round, copy) of every trained copy of a pair (a copy_<i>.json), of `trials`."""
        out = []
        for trial, variant, round_ in self._units("instability"):
            if trials is not None and trial not in trials:
                continue
            for path in glob.glob(os.path.join(self.pair_dir(trial, variant, round_), "copy_*.json")):
                with contextlib.suppress(ValueError):
                    out.append((trial, variant, round_, int(os.path.basename(path)[5:-5])))
        return sorted(out)

    def pair_results(self) -> list:
        """Every finished pair's result, sorted by (trial, variant, round); DamagedFileError for a damaged one."""
        return [self.load_pair(*key) for key in self.finished_pairs()]
