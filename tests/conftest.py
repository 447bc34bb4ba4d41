import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the end-to-end tests marked slow (CI does)")


def pytest_collection_modifyitems(config, items):
    # The slow end-to-end tests (CLI runs, kills and restarts, two workers)
    # about double the default run (README, "Run the tests"), so they run
    # when asked for: --runslow, or -m naming them.
    if config.getoption("--runslow") or "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow end-to-end test: pass --runslow (CI does)")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)
