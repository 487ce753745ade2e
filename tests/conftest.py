"""Test setup: legacy Keras must be chosen before TensorFlow is imported anywhere.

Tests marked `slow` (a few end-to-end runs of a minute or so each, whose properties faster tests also check on
smaller settings) run only with --runslow or LTH_TF_SLOW=1, so the README's test command stays within CI's time:

    python -m pytest -q tests              # what CI runs
    python -m pytest -q tests --runslow    # everything
"""
import os

import pytest

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run the tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "multiprocess: starts several lth_tf processes (multi-worker, crash/resume)")
    config.addinivalue_line("markers", "slow: a long end-to-end run; only with --runslow or LTH_TF_SLOW=1")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("LTH_TF_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (or LTH_TF_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
