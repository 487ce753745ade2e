"""What the reproduction scripts share: logging, running an lth_tf entry point, Fashion-MNIST subsets, and a
resumable plan of jobs under a time budget.

    from benchmarks import common
    plan = common.Plan(out_dir, budget_minutes=60)
    plan.run("lenet trial 0", "lth_tf.instability", [...flags...])   # skipped if an earlier run finished it
    plan.total_minutes                                               # accumulated over resumed runs
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_module(module: str, args: list, echo=("trial ", "lth_tf", "k=")) -> None:
    """Runs ``python -m <module> --quiet <args>``, echoing its result lines; exits with its tail if it fails."""
    cmd = [sys.executable, "-m", module, "--quiet", *args]
    log("$ " + " ".join(cmd[1:]))
    began = time.perf_counter()
    tail = []
    with subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-15:]
            if line.startswith(echo):
                print("    " + line.rstrip(), flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"{module} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    log(f"finished in {time.perf_counter() - began:.0f}s")


def write_idx(path: str, array) -> None:
    """Writes a uint8 array as a gzipped IDX file (the MNIST format: magic 0x0000 08 ndim, big-endian dims)."""
    import numpy as np
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    tmp = path + ".tmp"
    with gzip.open(tmp, "wb") as f:
        f.write(header + array.tobytes())
    os.replace(tmp, path)


def figures_dir(out: str) -> str:
    """OUT/figures, made if missing: where a reproduction's summary puts the figures it shows."""
    path = os.path.join(out, "figures")
    os.makedirs(path, exist_ok=True)
    return path


def write_summary(out: str, parts: list) -> str:
    """Writes the lines `parts` to OUT/summary.md; returns its path."""
    path = os.path.join(out, "summary.md")
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return path


def fashion_source(source_dir: str) -> str:
    """source_dir if it holds the four Fashion-MNIST IDX files, else a one-line exit saying how to get them."""
    for name in FASHION_FILES:
        if not any(os.path.exists(os.path.join(source_dir, name + ext)) for ext in (".gz", "")):
            raise SystemExit(f"Fashion-MNIST not found in {source_dir} "
                             "(apt-get install dataset-fashion-mnist, or pass --fashion_dir)")
    return source_dir


def fashion_subset(source_dir: str, out_dir: str, train_images: int, test_images: int) -> str:
    """The first `train_images` training and `test_images` test images of Fashion-MNIST, as IDX files."""
    sys.path.insert(0, REPO)
    from lth_tf.data.idx import read_idx

    fashion_source(source_dir)
    os.makedirs(out_dir, exist_ok=True)
    if all(os.path.exists(os.path.join(out_dir, n + ".gz")) for n in FASHION_FILES):
        return out_dir
    for name in FASHION_FILES:
        src = os.path.join(source_dir, name + ".gz")
        if not os.path.exists(src):
            src = os.path.join(source_dir, name)
        count = train_images if name.startswith("train") else test_images
        write_idx(os.path.join(out_dir, name + ".gz"), read_idx(src)[:count])
    return out_dir


class Plan:
    """Jobs run in order under a budget; their wall time accumulates in OUT/timing.json across resumed runs.

    A job marked done by an earlier run is skipped; an optional job is skipped when it would end past the budget
    (its estimate: the time finished jobs of its kind took), and what finished is still reported."""

    def __init__(self, out: str, budget_minutes: float):
        self.path = os.path.join(out, "timing.json")
        self.budget_seconds = 60.0 * budget_minutes
        self.timing = {"jobs": {}, "total_seconds": 0.0}
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.timing = json.load(f)

    @property
    def total_minutes(self) -> float:
        return self.timing.get("total_seconds", 0.0) / 60.0

    def done(self, label: str) -> bool:
        return bool(self.timing["jobs"].get(label + " (done)"))

    def run(self, label: str, module: str, args: list, optional: bool = False) -> bool:
        """Runs the job unless finished or (optional and) over budget; True when it is finished."""
        if self.done(label):
            log(f"== {label}: finished in an earlier run")
            return True
        spent = self.timing.get("total_seconds", 0.0)
        estimate = self.estimate(label)
        if optional and spent + estimate > self.budget_seconds:
            log(f"== {label}: skipped, {spent / 60:.0f} of {self.budget_seconds / 60:.0f} budget minutes spent and "
                f"it would take about {estimate / 60:.0f}")
            return False
        log(f"== {label}")
        start = time.perf_counter()
        try:
            run_module(module, args)
        finally:  # a failed or interrupted job's time still counts
            elapsed = time.perf_counter() - start
            self.timing["jobs"][label] = self.timing["jobs"].get(label, 0.0) + elapsed
            self.timing["total_seconds"] = self.timing.get("total_seconds", 0.0) + elapsed
            self._save()
        self.timing["jobs"][label + " (done)"] = 1
        self._save()
        return True

    def estimate(self, label: str) -> float:
        """Seconds a job will take: the mean of the finished jobs of its kind ("<kind> trial <t>"), else 20% of the
        budget."""
        kind = label.rsplit(" trial ", 1)[0]
        seen = [seconds for name, seconds in self.timing["jobs"].items()
                if not name.endswith("(done)") and self.done(name) and name.rsplit(" trial ", 1)[0] == kind]
        return sum(seen) / len(seen) if seen else 0.2 * self.budget_seconds

    def header(self, title: str, script: str, trials: int) -> list:
        """The first lines of a reproduction's summary.md: what made it, when, and the time it took."""
        return [f"# {title}: benchmark summary", "",
                f"Produced by `benchmarks/{script}` on {time.strftime('%Y-%m-%d %H:%M')} ({trials} trials planned).",
                "", f"Wall-clock time of the runs: {self.total_minutes:.1f} min (minutes per job: "
                f"{self.minutes_per_job()}).", ""]

    def minutes_per_job(self) -> dict:
        return {k: round(v / 60, 1) for k, v in self.timing.get("jobs", {}).items() if not k.endswith("(done)")}

    def _save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.timing, f, indent=1)
        os.replace(tmp, self.path)


def main(doc: str, out_name: str, module: str, jobs, build_report, trials: int, budget_minutes: float = 60.0):
    """The command line of a reproduction: --out, --budget_minutes, --trials, --fashion_dir, --report_only.

    jobs(out, data_dir, trials) -> [(label, args, optional)] run in order with `module`; then
    build_report(out, plan, trials) -> the summary's path."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", out_name))
    parser.add_argument("--budget_minutes", type=float, default=budget_minutes)
    parser.add_argument("--trials", type=int, default=trials)
    parser.add_argument("--fashion_dir", default=FASHION_DIR)
    parser.add_argument("--report_only", action="store_true")
    opts = parser.parse_args()
    out = os.path.abspath(opts.out)
    os.makedirs(out, exist_ok=True)
    plan = Plan(out, opts.budget_minutes)
    if not opts.report_only:
        data_dir = fashion_source(opts.fashion_dir)
        for label, args, optional in jobs(out, data_dir, opts.trials):
            plan.run(label, module, args, optional=optional)
        log(f"runs finished: {plan.total_minutes:.1f} min in all")
    log(f"summary: {build_report(out, plan, opts.trials)}")
