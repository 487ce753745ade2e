"""The instability sweep on a tiny setting: copies, paths and tables have the method's properties, finished
pairs are never trained again, and the command line answers bad input in one line."""
import csv
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lth_tf.data import loading
from lth_tf.experiment import interpolation, plan, stability
from lth_tf.experiment.config import Config
from lth_tf.experiment.store import Store
from lth_tf.models import networks
from lth_tf.pruning import rewind

SETTINGS = dict(model="lenet300_100", dataset="mnist1d", rounds=1, iterations=40, eval_every=20)


@pytest.fixture(scope="module")
def mnist1d():
    return loading.load("mnist1d")


def sweep(root, dataset, ks, **pair_settings):
    spec = dict(variants=("lottery", "random", "reinit"), alphas=3, train_subset=200)
    spec.update(pair_settings)
    events = []
    rows = stability.sweep(Config(**SETTINGS).resolve(), ks, plan.PairSpec(**spec), str(root),
                           on_event=lambda k, e: events.append((k, e)), dataset=dataset)
    return rows, events


@pytest.fixture(scope="module")
def finished(tmp_path_factory, mnist1d):
    root = tmp_path_factory.mktemp("inst")
    rows, events = sweep(root, mnist1d, [0, 20])
    return root, rows, events


def trained(events):
    return [(k, e.variant, e.round) for k, e in events if e.kind in ("start",)]


def test_every_k_round_and_variant_has_a_pair(finished):
    root, rows, _ = finished
    keys = [(r["rewind_iteration"], r["variant"], r["round"]) for r in rows]
    assert sorted(keys) == sorted([(k, v, r) for k in (0, 20) for v, r in
                                   [("lottery", 0), ("lottery", 1), ("random", 1), ("reinit", 1)]])
    with open(os.path.join(root, "instability_summary.csv")) as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == stability.SUMMARY_COLUMNS
        assert len(list(reader)) == 8
    with open(os.path.join(root, "instability.csv")) as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == stability.PATH_COLUMNS
        assert len(list(reader)) == 8 * 3 * 2  # pairs x alphas x (test, train)


def test_copies_differ_start_from_w_k_and_keep_pruned_weights_zero(finished, mnist1d):
    root, _, _ = finished
    store = Store(stability.store_dir(root, 20))
    lottery = store.load_round(0, "lottery", 1, "masks")
    for variant in ("lottery", "random", "reinit"):
        masks = _pair_masks(store, variant)
        a, b = (store.load_copy(0, variant, 1, i) for i in range(2))
        assert a["row"]["data_key"] != b["row"]["data_key"]
        assert a["row"]["iterations"] == 40 - 20  # trained k..T
        assert not np.array_equal(a["weights"]["fc1/kernel"], b["weights"]["fc1/kernel"])
        for name, mask in masks.items():
            assert int(mask.sum()) == int(lottery[name].sum())  # random pruning: same per-layer counts
            for copy in (a, b):
                assert np.all(copy["weights"][f"{name}/kernel"][~mask] == 0.0)
        if variant == "random":
            assert not np.array_equal(masks["fc1"], lottery["fc1"])
        else:
            assert all(np.array_equal(masks[n], lottery[n]) for n in lottery)


def _pair_masks(store, variant):
    from lth_tf.experiment.files import load_npz
    return load_npz(os.path.join(store.pair_dir(0, variant, 1), "masks.npz"))


def test_path_end_points_are_the_copies_own_errors_and_the_barrier_is_the_formula(finished, mnist1d):
    root, _, _ = finished
    store = Store(stability.store_dir(root, 20))
    result = store.load_pair(0, "lottery", 1)
    masks = _pair_masks(store, "lottery")
    model = networks.build("lenet300_100", mnist1d.input_shape, mnist1d.num_classes)
    for i, end in ((0, 0), (1, -1)):
        copy = store.load_copy(0, "lottery", 1, i)
        rewind.restore(model, copy["weights"], masks={})
        assert result["errors"]["test"][end] == interpolation.error(model, (mnist1d.x_test, mnist1d.y_test))
        assert result["errors"]["train"][end] == interpolation.error(model, (mnist1d.x_train[:200],
                                                                            mnist1d.y_train[:200]))
        assert 1.0 - result["errors"]["test"][end] == pytest.approx(copy["row"]["test_accuracy"], abs=1e-6)
    for split in ("test", "train"):
        errors = result["errors"][split]
        assert result[f"instability_{split}"] == pytest.approx(max(errors) - (errors[0] + errors[-1]) / 2)
    assert result["bn"] == "interpolate" and result["alphas"] == [0.0, 0.5, 1.0]
    assert all(np.array_equal(masks[n], store.load_round(0, "lottery", 1, "masks")[n]) for n in masks)


def test_same_noise_seed_gives_identical_copies_and_no_instability(tmp_path, mnist1d):
    rows, _ = sweep(tmp_path, mnist1d, [20], variants=("lottery",), noise_seeds=(7, 7))
    store = Store(stability.store_dir(tmp_path, 20))
    for r in (0, 1):
        a, b = (store.load_copy(0, "lottery", r, i) for i in range(2))
        assert all(np.array_equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    assert all(row["instability_test"] == 0.0 and row["instability_train"] == 0.0 for row in rows)


def test_other_noise_seeds_train_new_copies_and_a_result_without_seeds_resumes(tmp_path, mnist1d):
    """The copies' noise seeds are part of a pair's identity: other seeds train new copies, with those seeds'
    data orders, and measure a new path, rather than reusing the stored pairs. A result written before the seeds
    were recorded counts as the default seeds' (1, 2), so such a directory resumes."""
    sweep(tmp_path, mnist1d, [20], variants=("lottery",))
    store = Store(stability.store_dir(tmp_path, 20))
    for r in (0, 1):  # the result.json an older lth_tf wrote: no noise_seeds in it
        path = os.path.join(store.pair_dir(0, "lottery", r), "result.json")
        with open(path) as f:
            result = json.load(f)
        result.pop("noise_seeds", None)
        with open(path, "w") as f:
            json.dump(result, f)
    _, events = sweep(tmp_path, mnist1d, [20], variants=("lottery",))
    assert trained(events) == [] and len([e for _, e in events if e.kind == "pair_skip"]) == 2

    _, events = sweep(tmp_path, mnist1d, [20], variants=("lottery",), noise_seeds=(3, 4))
    assert sorted(trained(events)) == sorted((20, f"lottery/copy{i}", r) for r in (0, 1) for i in (0, 1))
    assert len([e for _, e in events if e.kind == "pair"]) == 2
    trial_seed = Config(**SETTINGS).seed * 1000 + 0  # experiment.experiment._Trial's seed of trial 0
    for r in (0, 1):
        keys = [store.load_copy(0, "lottery", r, i)["row"]["data_key"] for i in (0, 1)]
        assert keys == [plan.pair_key(trial_seed, r, s) for s in (3, 4)]
        assert store.load_pair(0, "lottery", r)["noise_seeds"] == [3, 4]
    _, events = sweep(tmp_path, mnist1d, [20], variants=("lottery",), noise_seeds=(3, 4))
    assert trained(events) == [] and len([e for _, e in events if e.kind == "pair_skip"]) == 2


def test_resume_trains_nothing_finished_and_new_alphas_only_reevaluate(finished, mnist1d):
    root, rows, _ = finished
    _, events = sweep(root, mnist1d, [0, 20])
    assert trained(events) == [] and not [e for _, e in events if e.kind == "pair"]
    assert len([e for _, e in events if e.kind == "pair_skip"]) == 8
    again, events = sweep(root, mnist1d, [20], alphas=5)
    assert trained(events) == []  # the copies are stored: only the path is evaluated again
    assert len([e for _, e in events if e.kind == "pair"]) == 4
    assert len(Store(stability.store_dir(root, 20)).load_pair(0, "lottery", 1)["alphas"]) == 5


def cli(*args, timeout=240):
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "lth_tf.instability", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))


@pytest.mark.parametrize("args,message", [
    (["--rewind_iterations=a,b"], "--rewind_iterations must be integers"),
    (["--rewind_iterations=0,500", "--iterations=100"], "--rewind_iterations: 500 must be in [0, 100)"),
    (["--variants=rearrange"], "--variants must be among lottery, reinit, random"),
    (["--rewind_iteration=5"], "use --rewind_iterations"),
    (["--alphas=1"], "--alphas must be at least 2"),
])
def test_bad_input_is_one_line(args, message, tmp_path):
    out = cli("--dataset=mnist1d", f"--output_dir={tmp_path}", *args)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("lth_tf: error: ") and message in out.stderr
    assert "Traceback" not in out.stderr


def test_command_line_run_writes_the_tables(tmp_path):
    out = cli("--model=lenet300_100", "--dataset=mnist1d", "--rounds=0", "--iterations=20", "--eval_every=10",
              "--rewind_iterations=0,10", "--alphas=3", "--train_subset=100", f"--output_dir={tmp_path}", "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 pairs" in out.stdout.splitlines()[-1]
    with open(tmp_path / "instability_summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["rewind_iteration"], r["variant"], r["round"]) for r in rows] == [("0", "lottery", "0"),
                                                                                 ("10", "lottery", "0")]


def test_report_draws_the_three_figures_from_the_tables(finished, tmp_path):
    from lth_tf import report
    root, _, _ = finished
    assert report.main(["report", str(root), "--out", str(tmp_path)]) == 0
    names = {"instability_paths.png", "instability_vs_k.png", "instability_paths_imp.png", "instability_imp.png",
             "instability.md"}
    assert names <= set(os.listdir(tmp_path))
    text = (tmp_path / "instability.md").read_text()
    assert text.count("| lottery | 0 |") == 2 and "| random | 1 |" in text


REFUSED = ("import atexit, sys\n"
           "atexit.register(lambda: print('imported:', ' '.join(m for m in ('tensorflow', 'lth_tf.data.loading')\n"
           "                                                   if m in sys.modules), flush=True))\n"
           "from lth_tf import instability\ninstability.run()\n")


def test_a_held_directory_or_a_changed_configuration_is_refused_in_one_line_before_tensorflow(tmp_path):
    import fcntl
    root, args = tmp_path / "inst", ["--dataset=mnist1d", "--rounds=0", "--iterations=20", "--eval_every=10",
                                     "--rewind_iterations=0,10"]
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")

    def refused(*extra):
        out = subprocess.run([sys.executable, "-c", REFUSED, *args, *extra, f"--output_dir={root}"],
                             capture_output=True, text=True, timeout=120, env=env,
                             cwd=os.path.dirname(os.path.dirname(__file__)))
        assert out.returncode == 2 and out.stdout == "imported: \n", out  # no TensorFlow, no data loaded
        assert len(out.stderr.splitlines()) == 1, out.stderr
        return out.stderr.strip()

    k10 = stability.store_dir(str(root), 10)
    os.makedirs(k10)
    with open(os.path.join(k10, ".lock"), "a") as held:  # another process runs k=10 (flock: per open file)
        fcntl.flock(held, fcntl.LOCK_EX)
        assert refused() == f"lth_tf: error: another lth_tf process is running in '{k10}' (lock .lock is held)"
    assert sorted(os.listdir(root)) == ["rewind_10"] and os.listdir(k10) == [".lock"]  # k=0's files removed again

    cfg = stability.config_for(Config(dataset="mnist1d", rounds=0, iterations=20, eval_every=10).resolve(), 0,
                               str(root))
    store = Store(cfg.results_dir())
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        pass
    line = refused("--learning_rate=0.5")
    assert line.startswith(f"lth_tf: error: '{cfg.results_dir()}' holds results of a different configuration "
                           "(learning_rate: ") and line.endswith("; use another --output_dir")


def test_a_stop_names_the_kept_backup_of_the_copy_being_trained(tmp_path):
    import signal
    from lth_tf import main as cli
    from lth_tf.experiment import signals
    store = Store(str(tmp_path))
    store.save_backup(0, "random", 2, {"meta": np.array('{"iteration": 30}')}, copy=1)
    stop = signals.Stopped(signal.SIGTERM)
    kept = "finished rounds and pairs"
    assert cli._stop_line(stop, store, (0, "random/copy1", 2), kept) == (
        "lth_tf: stopped by SIGTERM; finished rounds and pairs and the backup of trial 0 random round 2 copy 1 at "
        "iteration 30 are kept; run the same command again to resume")
    assert cli._stop_line(stop, store, (0, "random/copy0", 2), kept) == (
        "lth_tf: stopped by SIGTERM; finished rounds and pairs are kept (trial 0 random round 2 copy 0 restarts: "
        "no backup yet); run the same command again to resume")


FLAGFILES = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "flags",
                                          "instability_*.flags")))


@pytest.mark.parametrize("path", FLAGFILES, ids=[os.path.basename(p) for p in FLAGFILES])
def test_experiment_flagfiles_parse_into_a_sweep(path):
    """Each flagfile names the paper, parses into a sweep with k = 0 among its rewind points, the lottery and
    random-pruning pairs, and its own results directory."""
    from lth_tf import instability

    assert "Linear Mode Connectivity" in open(path).read()
    instability.FLAGS.unparse_flags()
    try:
        instability.FLAGS(["lth_tf.instability", f"--flagfile={path}"])
        base, ks, variants, root = instability.parse()
    finally:
        instability.FLAGS.unparse_flags()
    assert ks[0] == 0 and len(ks) >= 3 and {"lottery", "random"} <= set(variants)
    assert root == f"results/{os.path.basename(path)[:-len('.flags')]}" and base.rounds >= 10
    assert instability.FLAGS["alphas"].default == 30
