"""Shared test options: ``--full`` runs the slow checks at full size.

Compiled kernels are cached in a fresh folder per test run (``MINIMAL_EOS_CACHE``), so that
the tests neither read nor write the user's kernel cache and never depend on its content.
"""

import os
import shutil
import tempfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("default")


def pytest_configure(config):
    config.kernel_cache = tempfile.mkdtemp(prefix="minimal-eos-kernels-")
    os.environ["MINIMAL_EOS_CACHE"] = config.kernel_cache


def pytest_unconfigure(config):
    shutil.rmtree(config.kernel_cache, ignore_errors=True)


def pytest_addoption(parser):
    parser.addoption(
        "--full", action="store_true", default=False,
        help="run tests marked slow at full size (by default they run in a bounded form)",
    )


@pytest.fixture(scope="session")
def full(request) -> bool:
    """True when pytest runs with --full: slow tests scale up their sizes."""
    return bool(request.config.getoption("--full"))


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A seeded generator; the seed is printed so that a failure can be replayed."""
    seed = zlib.crc32(request.node.nodeid.encode())
    print(f"rng seed for {request.node.nodeid}: {seed}")
    return np.random.default_rng(seed)
