"""--trainer=tfmot (tfmot's PruneLowMagnitude wrappers train each round, the mask held fixed) against the fast
--trainer=masked: two rounds of lenet300_100 and of conv2 on tiny data under op determinism give identical masks
and final weights within 1e-5. Runs in one subprocess, since op determinism is process-wide."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import json, sys
import numpy as np
from lth_tf.data.pipelines import Dataset
from lth_tf.experiment import distribute, experiment
from lth_tf.experiment.config import Config
from lth_tf.experiment.store import Store

distribute.enable_determinism(0)
rng = np.random.default_rng(0)

def split(n, shape):
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    return x, (x.reshape(n, -1)[:, :5].sum(1) > 0).astype(np.int64) * 3

def tiny(shape):
    (xt, yt), (xv, yv), (xs, ys) = split(96, shape), split(24, shape), split(24, shape)
    return Dataset("tiny", shape, 10, "random", xt, yt, xv, yv, xs, ys)

out = {}
for model, dataset, shape in (("lenet300_100", "mnist1d", (40,)), ("conv2", "fashion_mnist", (28, 28, 1))):
    ds = tiny(shape)
    for trainer in ("masked", "tfmot"):
        root = f"{sys.argv[1]}/{model}_{trainer}"
        cfg = Config(model=model, dataset=dataset, rounds=2, iterations=12, eval_every=6, batch_size=16,
                     momentum=0.9, trainer=trainer, output_dir=root, prune_rate_fc=0.5, prune_rate_conv=0.3).resolve()
        store = Store(root)
        with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
            experiment.run(cfg, store, dataset=ds)
        out[f"{model}/{trainer}"] = root
print(json.dumps(out))
"""


def _npz(path):
    import numpy as np
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.slow  # test_trainer checks the same agreement on one small round per optimizer
def test_tfmot_and_masked_trainers_agree_on_two_rounds_of_lenet_and_conv2(tmp_path):
    import numpy as np
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    roots = json.loads(proc.stdout.strip().splitlines()[-1])
    for model in ("lenet300_100", "conv2"):
        for r in (0, 1, 2):
            masked, tfmot_ = (os.path.join(roots[f"{model}/{t}"], "trial_0", "lottery", f"round_{r}")
                              for t in ("masked", "tfmot"))
            m1, m2 = _npz(f"{masked}/masks.npz"), _npz(f"{tfmot_}/masks.npz")
            assert m1.keys() == m2.keys()
            for name in m1:
                np.testing.assert_array_equal(m1[name], m2[name])
            if r:
                assert not all(m.all() for m in m1.values())  # pruned
            w1, w2 = _npz(f"{masked}/weights.npz"), _npz(f"{tfmot_}/weights.npz")
            assert w1.keys() == w2.keys()
            for key in w1:
                np.testing.assert_allclose(w2[key], w1[key], rtol=1e-5, atol=1e-5, err_msg=f"{model} r{r} {key}")
            for name, mask in m1.items():
                assert np.all(w2[f"{name}/kernel"][~mask] == 0.0)
