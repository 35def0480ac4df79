"""Fixtures shared by every test folder."""

from __future__ import annotations

import os

# One torch thread in every test process and every nascli it starts: tests run two at a time
# (pytest-xdist), and a fixed count keeps scores bit-identical between the runs a test compares
# (nascli otherwise fits its threads to the cores other processes leave free).
os.environ["OMP_NUM_THREADS"] = "1"

import pytest
import torch

from nascli.training.device import fix_threads

fix_threads(1)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests single-threaded: tiny networks gain nothing from threads, and on a
    shared 2-core machine OpenMP workers that wait on each other make them many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
