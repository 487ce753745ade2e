"""Checks the offline Bazel test setup itself (fast): `bazel test //tools/bazel:selftest`.

Runs through tools/bazel/pytest_runner.py like every //:test_* target, from the runfiles tree of the main repository.
"""
import importlib.util
import os
import sys


def test_runs_under_bazel_from_the_runfiles_tree():
    assert "TEST_SRCDIR" in os.environ
    assert os.path.isfile("tools/bazel/selftest.py")


def test_interpreter_is_the_python3_on_path_with_its_site_packages():
    assert sys.version_info >= (3, 9)
    for name in ("pytest", "numpy", "tensorflow"):
        assert importlib.util.find_spec(name) is not None, f"{name} is not importable by {sys.executable}"


def test_lth_tf_is_importable_from_the_workspace():
    spec = importlib.util.find_spec("lth_tf")
    assert spec is not None
    locations = list(spec.submodule_search_locations or [])
    assert any(os.path.isfile(os.path.join(p, "_env.py")) for p in locations), locations
