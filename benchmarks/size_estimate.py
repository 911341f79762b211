"""The run-time estimate that refuses oversized runs, against measured run times.

Runs a few small configurations of ``python -m validation.compare`` (one torch thread,
CPU) and prints, for each, the estimate of :func:`validation.preflight.check_config`
beside the measured time of :func:`validation.experiment.run_experiment`, and their
ratio. The estimate only has to be within an order of magnitude: it refuses runs that
exceed the machine's memory or the time bound by far.

    python -m benchmarks.size_estimate
"""

from __future__ import annotations

import time

import torch

from validation.experiment import Config, run_experiment
from validation.preflight import FLOP_RATE, check_config

CONFIGS = {
    "synthetic, edge": Config(dataset="synthetic", n=100, steps=60, checks=("edge",)),
    "digits, flows": Config(dataset="digits", n=300, width=32, eta=0.8, steps=100,
                            track_every=3, checks=("edge", "central-flow", "flow-distance")),
    "mnist1d cnn, edge": Config(arch="cnn", width=16, eta=0.1, steps=60, checks=("edge",)),
    "mnist1d width 512, edge": Config(width=512, eta=0.1, steps=60, checks=("edge",)),
}


def main() -> None:
    torch.set_num_threads(1)
    print(f"assumed rate {FLOP_RATE:.3g} FLOP/s per thread; one torch thread, CPU")
    print(f"{'configuration':26s} {'params':>8s} {'estimated s':>12s} {'measured s':>11s} "
          f"{'measured/estimated':>19s}")
    for name, config in CONFIGS.items():
        est = check_config(config)
        t0 = time.perf_counter()
        run_experiment(config, device="cpu")
        measured = time.perf_counter() - t0
        print(f"{name:26s} {est.params:8d} {est.seconds:12.2f} {measured:11.2f} "
              f"{measured / est.seconds:19.2f}")


if __name__ == "__main__":
    main()
