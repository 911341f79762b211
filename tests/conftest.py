"""Shared test options.

``--full`` runs the slow checks at full size and the hypothesis properties on the long
profile. Hypothesis profiles:

- ``deterministic`` (loaded by default, with or without ``CI`` in the environment): the
  examples are derived from each test's source (``derandomize=True``) and no example
  database is read or written, so two runs of ``make test`` draw the same examples.
- ``long`` (``pytest --full``, ``make test-full``): also deterministic; the properties that
  scale with it (``LONG`` in their module) run at least 1,000 examples each.
- ``explore`` (``pytest --hypothesis-profile=explore``): random seeds and the local
  example database, to look for new counterexamples; a failure prints its reproduction
  blob.

Timeouts (pytest-timeout): ``timeout`` in ``setup.cfg`` for every test, ``SLOW_TIMEOUT``
for the end-to-end tests marked ``slow`` (unless they carry their own
``@pytest.mark.timeout``), and ten times either with ``--full``, which runs ten times the
examples and the slow tests at full size.

Compiled kernels are cached in a fresh folder per test run (``MINIMAL_EOS_CACHE``), so that
the tests neither read nor write the user's kernel cache and never depend on its content.

Under mutmut (``MUTANT_UNDER_TEST`` in the environment) the parallel kernels run on numba's
``workqueue`` threading layer: mutmut forks one child per mutant from a process that has
already run them, and GNU OpenMP ends such a child with SIGTERM ("fork() called from a
process already using GNU OpenMP") as soon as it enters a parallel region, which mutmut
can only report as "suspicious". The workqueue layer survives the fork. All of mutmut's
test runs share one kernel cache in its working folder (``kernel-cache``), so that a kernel
that a mutant leaves unchanged is compiled once, not once per mutant (a mutated update
rule generates another module text, hence another cache entry).
"""

import math
import os
import shutil
import sys
import tempfile
import zlib

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

SLOW_TIMEOUT = 900.0
FULL_TIMEOUT_FACTOR = 10

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("deterministic", derandomize=True, database=None, **_COMMON)
settings.register_profile("long", derandomize=True, database=None, **_COMMON)
settings.register_profile("explore", derandomize=False, **_COMMON)
settings.load_profile("deterministic")

UNDER_MUTMUT = "MUTANT_UNDER_TEST" in os.environ
if UNDER_MUTMUT:
    numba.config.THREADING_LAYER = "workqueue"


def pytest_unconfigure(config):
    if not UNDER_MUTMUT:
        shutil.rmtree(config.kernel_cache, ignore_errors=True)


def pytest_addoption(parser):
    parser.addoption(
        "--full", action="store_true", default=False,
        help="run tests marked slow at full size (by default they run in a bounded form) "
             "and the hypothesis properties on the long profile",
    )


def pytest_configure(config):
    # runs before the hypothesis plugin's own configure: --hypothesis-profile still wins
    if config.getoption("--full"):
        settings.load_profile("long")
    if UNDER_MUTMUT:
        config.kernel_cache = str(config.rootpath / "kernel-cache")
    else:
        config.kernel_cache = tempfile.mkdtemp(prefix="minimal-eos-kernels-")
    os.environ["MINIMAL_EOS_CACHE"] = config.kernel_cache


def pytest_collection_modifyitems(config, items):
    full = config.getoption("--full")
    factor = FULL_TIMEOUT_FACTOR if full else 1
    default = float(config.getini("timeout") or 0)
    for item in items:
        own = item.get_closest_marker("timeout")
        if own is not None:
            limit = float(own.args[0] if own.args else own.kwargs["timeout"])
        elif item.get_closest_marker("slow") is not None:
            limit = SLOW_TIMEOUT
        else:
            limit = default
        if limit > 0:  # 0 disables the timeout
            item.add_marker(pytest.mark.timeout(limit * factor), append=False)


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


def _same(a, b) -> bool:
    """Equal, with NaN equal to NaN, through dicts, lists and tuples (and torch tensors,
    compared with ``torch.equal``: a tensor exists only once torch is imported)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


@pytest.fixture(scope="session")
def same():
    """``(a, b) -> bool``: ``a == b`` bit for bit, with NaN equal to NaN, through dicts,
    lists, tuples and torch tensors (two runs' records, a record and its file)."""
    return _same
