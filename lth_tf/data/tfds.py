"""tensorflow-datasets: a dataset prepared in --data_dir (or tfds' default directory), downloaded only where that
can work; a one-line DataError saying what was tried otherwise.
"""
from __future__ import annotations

from lth_tf import _env  # noqa: F401  (tensorflow_datasets imports TensorFlow)

import os
import socket
from pathlib import Path

import numpy as np

from lth_tf.data.datasets import DataError

_TFDS_HOST = "storage.googleapis.com"


def _online(host: str = _TFDS_HOST, timeout: float = 3.0) -> bool:
    """Whether a download could work: a proxy is configured or ``host`` accepts a connection."""
    if any(os.environ.get(v) for v in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")):
        return True
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = text.split(". ")[0]
    return f"{type(e).__name__}: {text}"[:200]


def _load_tfds(name: str, data_dir: str | None, tried: list[Path]):
    hint = "run once with network access or pass --data_dir with a prepared tfds directory"
    prefix = f"dataset {name!r} is not available: "
    if tried:
        prefix += f"no IDX files in {', '.join(str(d) for d in tried)}, and "
    if name == "fashion_mnist":
        hint = "apt-get install dataset-fashion-mnist, " + hint.replace("directory", "directory or IDX files")
    try:
        import tensorflow_datasets as tfds

        def fetch(download):
            return tfds.load(name, split=["train", "test"], as_supervised=True, data_dir=data_dir, download=download)
        try:
            splits = fetch(download=False)
        except Exception as e:  # not prepared in data_dir: download only if that can work
            if not _online():
                raise DataError(f"{prefix}tensorflow-datasets could not load it ({_short(e)}; "
                                f"no download tried: {_TFDS_HOST} is unreachable); {hint}") from None
            splits = fetch(download=True)
        # Batched reads rather than batch_size=-1, which asks for one giant batch when split sizes are unknown.
        arrays = []
        for split in splits:
            xs, ys = zip(*tfds.as_numpy(split.batch(10_000)))
            arrays += [np.concatenate(xs), np.concatenate(ys)]
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{prefix}tensorflow-datasets could not load it ({_short(e)}); {hint}") from None
    return tuple(arrays), f"tensorflow-datasets {name!r} (data_dir={data_dir or 'default'})"
