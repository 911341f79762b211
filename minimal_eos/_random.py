"""Counter-based random numbers for the compiled kernels (private).

Every draw is a pure function of ``(seed, run, step, lane)``: a chain of splitmix64
finalisers over the four keys. No generator state is carried, so a kernel gives the same
numbers whatever the number of threads, the chunking of the runs or the order in which
they are visited, and any step of any run can be recomputed on its own.

References
----------
Steele, Lea, Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014
(the splitmix64 finaliser); Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
SC 2011 (counter-based generation).
"""

from __future__ import annotations

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 2.0**-53

JIT = {"nogil": True, "error_model": "numpy", "cache": True}


@numba.njit(**JIT)
def mix(z):
    """The splitmix64 finaliser of ``z + golden``: a bijection of 64-bit words."""
    z = np.uint64(z) + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@numba.njit(**JIT)
def key(seed, run, step, lane):
    """The 64-bit word of ``(seed, run, step, lane)``, each a non-negative integer."""
    z = mix(np.uint64(seed))
    z = mix(z ^ np.uint64(run))
    z = mix(z ^ np.uint64(step))
    return mix(z ^ np.uint64(lane))


@numba.njit(**JIT)
def uniform(seed, run, step, lane):
    """A uniform float in ``[0, 1)`` with 53 random bits."""
    return float(key(seed, run, step, lane) >> _S11) * _TWO_M53


@numba.njit(**JIT)
def normal(seed, run, step, lane):
    """A standard normal draw by Box-Muller from lanes ``2 lane`` and ``2 lane + 1``."""
    u1 = (float(key(seed, run, step, 2 * lane) >> _S11) + 1.0) * _TWO_M53  # in (0, 1]
    u2 = uniform(seed, run, step, 2 * lane + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@numba.njit(**JIT)
def below(n, seed, run, step, lane):
    """A uniform integer in ``[0, n)`` (multiply-shift on 53 bits; bias below ``n 2^-53``)."""
    return min(int(uniform(seed, run, step, lane) * n), n - 1)
