"""The Bazel BUILD file covers the repository: one py_test per tests/test_*.py, one py_binary per entry point.

Runs `bazel query //...` (offline, no build). Skipped where bazel is not installed, and under `bazel test` itself.
The first call starts a Bazel server (a few seconds); later calls reuse it.
"""
import glob
import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_POINTS = ["main", "report", "xor", "export", "launch"]

pytestmark = [
    pytest.mark.skipif(shutil.which("bazel") is None, reason="bazel is not installed"),
    pytest.mark.skipif("TEST_SRCDIR" in os.environ, reason="already running under bazel"),
]


@pytest.fixture(scope="module")
def targets():
    """{label: rule kind} for every target in the main repository."""
    proc = subprocess.run(
        ["bazel", "query", "//...", "--output=label_kind", "--noshow_progress"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = {}
    for line in proc.stdout.splitlines():
        kind, _, label = line.rpartition(" ")
        out[label] = kind.replace(" rule", "")
    return out


def test_every_test_file_has_a_py_test(targets):
    files = sorted(glob.glob(os.path.join(REPO, "tests", "test_*.py")))
    assert files
    for path in files:
        label = "//:" + os.path.basename(path)[:-len(".py")]
        assert targets.get(label) == "py_test", f"{label} is not a py_test (BUILD glob over tests/test_*.py)"


def test_every_entry_point_has_a_py_binary(targets):
    for name in ENTRY_POINTS:
        # A module lth_tf/<name>.py, or a package lth_tf/<name>/ run by its __main__.py (lth_tf.xor).
        paths = ([name + ".py"], [name, "__main__.py"])
        exists = any(os.path.exists(os.path.join(REPO, "lth_tf", *path)) for path in paths)
        assert (targets.get("//:" + name) == "py_binary") == exists, f"//:{name} vs lth_tf/{name}.py"


def test_library_covers_the_package(targets):
    assert targets.get("//:lth_tf") == "py_library"


def test_bazel_test_passes_offline():
    # A real `bazel test`: the offline stand-ins for rules_cc/rules_java/remote_coverage_tools must satisfy
    # Bazel's toolchain resolution, and the py_test must run under the python3 on PATH.
    proc = subprocess.run(["bazel", "test", "//tools/bazel:selftest", "--noshow_progress"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "1 test passes" in proc.stdout + proc.stderr
