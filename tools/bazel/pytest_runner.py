"""Runs pytest-style test files as a Bazel py_test: `pytest_runner.py tests/test_x.py [more pytest args]`.

Bazel starts this from the runfiles tree of the main repository, so the relative paths in BUILD work as given.
It maps Bazel's test environment onto pytest: the JUnit XML file Bazel asks for, its private temporary directory,
and `--test_filter` (as `-k`).
"""
import os
import sys

import pytest


def main(argv):
    args = list(argv) + ["-q", "-p", "no:cacheprovider"]  # the runfiles tree is read-only: no .pytest_cache
    xml = os.environ.get("XML_OUTPUT_FILE")
    if xml:
        args.append("--junitxml=" + xml)
    tmp = os.environ.get("TEST_TMPDIR")
    if tmp:
        args.append("--basetemp=" + os.path.join(tmp, "pytest"))
    test_filter = os.environ.get("TESTBRIDGE_TEST_ONLY")
    if test_filter:
        args += ["-k", test_filter]
    return pytest.main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
