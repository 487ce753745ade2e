"""benchmarks.common.Plan: finished jobs are skipped on a rerun, time accumulates across runs, and an optional
job starts only if its estimate (the finished jobs of its kind) fits in the budget left."""
import json
import os

import pytest

from benchmarks import common


@pytest.fixture
def fake_runs(monkeypatch):
    ran = []

    def run_module(module, args):
        ran.append((module, args))
        if args == ["--fail"]:
            raise SystemExit("failed")

    monkeypatch.setattr(common, "run_module", run_module)
    return ran


def test_a_rerun_skips_finished_jobs_and_keeps_the_time(tmp_path, fake_runs):
    plan = common.Plan(str(tmp_path), budget_minutes=60)
    assert plan.run("lenet trial 0", "m", ["a"]) is True
    with pytest.raises(SystemExit):
        plan.run("conv trial 0", "m", ["--fail"])
    again = common.Plan(str(tmp_path), budget_minutes=60)
    assert again.run("lenet trial 0", "m", ["a"]) is True and len(fake_runs) == 2  # not run again
    saved = json.load(open(tmp_path / "timing.json"))
    assert "conv trial 0 (done)" not in saved["jobs"] and "conv trial 0" in saved["jobs"]  # a failure counts
    assert saved["total_seconds"] == pytest.approx(saved["jobs"]["lenet trial 0"] + saved["jobs"]["conv trial 0"])


def test_an_optional_job_starts_only_if_its_estimate_fits(tmp_path, fake_runs):
    (tmp_path / "timing.json").write_text(json.dumps(
        {"jobs": {"lenet trial 0": 1500.0, "lenet trial 0 (done)": 1, "conv trial 0": 900.0,
                  "conv trial 0 (done)": 1}, "total_seconds": 2400.0}))
    plan = common.Plan(str(tmp_path), budget_minutes=60)  # 1,200 s left
    assert plan.estimate("lenet trial 1") == 1500.0 and plan.estimate("xor trial 0") == 0.2 * 3600
    assert plan.run("lenet trial 1", "m", ["a"], optional=True) is False  # 2,400 + 1,500 > 3,600
    assert plan.run("conv trial 1", "m", ["b"], optional=True) is True  # 2,400 + 900 fits
    assert plan.run("lenet trial 1", "m", ["a"]) is True  # not optional: runs
    assert [args for _, args in fake_runs] == [["b"], ["a"]]


def test_fashion_subset_keeps_the_first_images_of_each_split(tmp_path):
    """The Fashion-MNIST subset the benchmarks train on: exactly the first N training and M test images."""
    import numpy as np
    from lth_tf.data.idx import read_idx
    source, rng = tmp_path / "source", np.random.default_rng(0)
    source.mkdir()
    arrays = {}
    for name, shape in zip(common.FASHION_FILES, ((12, 28, 28), (12,), (7, 28, 28), (7,))):
        arrays[name] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        common.write_idx(str(source / (name + ".gz")), arrays[name])
    out = common.fashion_subset(str(source), str(tmp_path / "subset"), train_images=5, test_images=3)
    for name, count in zip(common.FASHION_FILES, (5, 5, 3, 3)):
        np.testing.assert_array_equal(read_idx(os.path.join(out, name + ".gz")), arrays[name][:count])
