"""The report over several directories: pruning-at-initialization methods, their ablations, IMP as reference."""
import glob
import json
import os

from lth_tf import report
from test_report import PNG_MAGIC, _cli, make_results


def at_init_dir(root):
    """The synthetic directory of test_report, relabelled as SNIP (lottery) with a shuffle ablation."""
    root = make_results(root)
    for path in glob.glob(os.path.join(root, "trial_*", "*", "round_*", "result.json")):
        try:
            row = json.load(open(path))
        except ValueError:
            continue
        row["pruning"] = "snip"
        json.dump(row, open(path, "w"))
    for trial in (0, 1):
        os.rename(os.path.join(root, f"trial_{trial}", "reinit"), os.path.join(root, f"trial_{trial}", "shuffle"))
    return root


def test_methods_and_ablation_plots_and_table_over_two_directories(tmp_path):
    imp, snip = make_results(tmp_path / "imp"), at_init_dir(tmp_path / "snip")
    out = str(tmp_path / "out")
    paths = report.write_report([imp, snip], out)
    names = {os.path.basename(p) for p in paths}
    assert {"methods.png", "ablations_snip.png", "ablations_iterative.png", "summary.md"} <= names
    for p in paths:
        if p.endswith(".png"):
            assert open(p, "rb").read(8) == PNG_MAGIC
    md = open(os.path.join(out, "summary.md")).read()
    section = md.split("## Pruning at initialization")[1]
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): [c.strip() for c in line.strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| ")}
    assert rows["SNIP", "lottery"][2:5] == ["96.00 [95.00, 97.00]", "95.00 [94.00, 96.00]", "2"]
    assert rows["SNIP", "shuffle"][3] == "88.00 [87.00, 89.00]"
    assert rows["IMP (lottery, iterative)", "reinit"][3] == "88.00 [87.00, 89.00]"
    assert "round 1 (50.0%)" in section


def test_cli_takes_several_directories(tmp_path):
    imp, snip = make_results(tmp_path / "imp"), at_init_dir(tmp_path / "snip")
    p = _cli(imp, snip, "--out", str(tmp_path / "cli"))
    assert p.returncode == 0, p.stderr
    assert f"wrote {tmp_path / 'cli' / 'methods.png'}" in p.stdout
    only_imp = _cli(imp, "--out", str(tmp_path / "imp_only"))
    assert only_imp.returncode == 0 and "methods.png" not in only_imp.stdout  # no method at initialization
