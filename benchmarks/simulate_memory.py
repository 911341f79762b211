"""The memory estimate of :func:`minimal_eos.simulate` against measured peak memory.

Each configuration (GD on a depth-2 scalar network) runs in a fresh interpreter, which
records its peak resident memory after a small warm-up call and after the measured call;
the difference, plus the initial points the caller holds, is the measured memory of the
call. Prints it beside :func:`minimal_eos.simulate.memory_estimate` and their ratio.

    python -m benchmarks.simulate_memory
"""

from __future__ import annotations

import subprocess
import sys

CONFIGS = (  # runs, steps, every, save
    (10**6, 200, 10, "loss,sharpness,theta"),
    (2 * 10**6, 50, 50, ""),
    (3 * 10**5, 1000, 5, "loss"),
)

CODE = """
import importlib, resource
import numpy as np
from minimal_eos import GD, ScalarNetwork, simulate
net = ScalarNetwork(depth=2)
simulate(net, GD(), [0.5, 1.5], 3, eta=0.1)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
runs, steps, every, save = {runs}, {steps}, {every}, tuple(f for f in "{save}".split(",") if f)
theta0 = np.random.default_rng(0).uniform(0.5, 1.5, (runs, 2))
simulate(net, GD(), theta0, steps, eta=0.2, every=every, save=save)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
est = importlib.import_module("minimal_eos.simulate").memory_estimate(
    runs, 2, steps, every=every, save=save)
print(peak - base + theta0.nbytes, est["total"])
"""


def main() -> None:
    print(f"{'runs':>9s} {'steps':>6s} {'every':>6s} {'save':22s} {'estimated MiB':>14s} "
          f"{'measured MiB':>13s} {'measured/estimated':>19s}")
    for runs, steps, every, save in CONFIGS:
        out = subprocess.run([sys.executable, "-c", CODE.format(runs=runs, steps=steps,
                                                                 every=every, save=save)],
                             capture_output=True, text=True, check=True)
        measured, estimated = map(float, out.stdout.split())
        print(f"{runs:9d} {steps:6d} {every:6d} {save or '()':22s} {estimated / 2**20:14.0f} "
              f"{measured / 2**20:13.0f} {measured / estimated:19.2f}")


if __name__ == "__main__":
    main()
