"""Build time of :class:`minimal_eos.ScalarNetwork` kernels against depth.

Each depth is built in a fresh interpreter with an empty kernel cache, so that nothing
built before is reused: the time is that of the sympy derivation, the generated source
and numba's compilation. Prints the time per depth and its ratio to the previous one;
:data:`minimal_eos.models.scalar.MAX_DEPTH` refuses deeper networks.

    python -m benchmarks.scalar_build [--depths 2 4 6 8 10 12]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

CODE = """
import time
from minimal_eos import ScalarNetwork
net = ScalarNetwork(depth={depth})
t0 = time.perf_counter()
net.kernels()
print(time.perf_counter() - t0)
"""


def build_seconds(depth: int) -> float:
    """Seconds to build the kernels of ``ScalarNetwork(depth)`` in a new process."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "MINIMAL_EOS_CACHE": cache}
        out = subprocess.run([sys.executable, "-c", CODE.format(depth=depth)], env=env,
                             capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 6, 8, 10, 12])
    args = parser.parse_args()
    print(f"{'depth':>5s} {'seconds':>9s} {'ratio to previous':>18s} {'per layer':>10s}")
    prev = None
    for depth in args.depths:
        s = build_seconds(depth)
        if prev is None:
            print(f"{depth:5d} {s:9.2f}")
        else:
            ratio = s / prev[1]
            per = ratio ** (1 / (depth - prev[0]))
            print(f"{depth:5d} {s:9.2f} {ratio:18.2f} {per:10.2f}")
        prev = (depth, s)


if __name__ == "__main__":
    main()
