"""Throughput of simulate() on a sweep of step sizes, against numpy, pure Python and C.

The workload: GD on the two-parameter model L(x, y) = 1/2 (x y - 1)^2 for a batch of
step sizes, with the divergence check and freeze that simulate() performs. Every
opponent runs the same map in the same floating-point operations:

- simulate() as a user calls it (default arguments, in particular the period detection
  up to max_period=64; only save=() since per-step records of the whole sweep would take
  gigabytes), and with max_period=1, each with 1 thread and with all threads;
- the same loop vectorised over the batch in numpy;
- a pure-Python loop on a subsample;
- a plain C loop compiled here with the system compiler at -O3 -march=native
  (-ffp-contract=off, so that it computes the same roundings as numba and the results can
  be compared bit for bit), innermost loop over the batch like simulate()'s kernel.

It also measures the latency of the first simulate() call in a new process (kernels
built and compiled, or loaded from the disk cache), in a fresh interpreter with an empty
kernel cache and then with the cache that the first one left.

It also times mini-batch SGD (batch 4, without replacement) against GD on the same
finite-sum model, logistic regression on 16 points in 2 dimensions, both through simulate()
with all threads: SGD draws its batches from the counter-based generator and accumulates
the gradients of the examples drawn (see minimal_eos._sgd), GD runs the fused full-batch
kernel.

Run: ``python -m benchmarks.simulate_throughput [--runs 10000 --steps 10000]``
(``--sgd-only`` for the SGD line alone).
Prints updates per second (one update = one step of one run) and the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from minimal_eos import GD, SGD, LogisticRegression, ScalarNetwork, simulate

BOUND = 1e8
X0, Y0 = 1.5, 0.3

C_SOURCE = r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* GD on 1/2 (x y - 1)^2 for a batch of step sizes; innermost loop over the batch. */
int main(int argc, char **argv) {
    long nb = atol(argv[1]), steps = atol(argv[2]);
    double bound = atof(argv[4]);
    const long chunk = 256;
    double *x = malloc(nb * sizeof(double)), *y = malloc(nb * sizeof(double));
    double *eta = malloc(nb * sizeof(double));
    long *div = malloc(nb * sizeof(long));
    FILE *f = fopen(argv[3], "rb");  /* the step sizes, as float64 */
    if (!f || fread(eta, sizeof(double), nb, f) != (size_t)nb) return 1;
    fclose(f);
    for (long b = 0; b < nb; b++) {
        x[b] = X0; y[b] = Y0; div[b] = -1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long c = 0; c < nb; c += chunk) {
        long n = nb - c < chunk ? nb - c : chunk;
        double *xc = x + c, *yc = y + c, *ec = eta + c;
        long *dc = div + c;
        for (long t = 0; t < steps; t++) {
            for (long b = 0; b < n; b++) {
                double r = xc[b] * yc[b] - 1.0;
                double xn = xc[b] - ec[b] * (yc[b] * r);
                double yn = yc[b] - ec[b] * (xc[b] * r);
                int ok = (dc[b] < 0) & (fabs(xn) <= bound) & (fabs(yn) <= bound);
                dc[b] = (dc[b] < 0 && !ok) ? t + 1 : dc[b];
                xc[b] = ok ? xn : xc[b];
                yc[b] = ok ? yn : yc[b];
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    printf("%.9f\n", secs);
    for (long b = 0; b < nb; b++) printf("%.17g %.17g %ld\n", x[b], y[b], div[b]);
    return 0;
}
""".replace("X0", repr(X0)).replace("Y0", repr(Y0))


def numpy_loop(etas: np.ndarray, steps: int):
    """The same map vectorised over the batch in numpy."""
    x = np.full(len(etas), X0)
    y = np.full(len(etas), Y0)
    div = np.full(len(etas), -1)
    for t in range(steps):
        r = x * y - 1.0
        xn = x - etas * (y * r)
        yn = y - etas * (x * r)
        ok = (div < 0) & (np.abs(xn) <= BOUND) & (np.abs(yn) <= BOUND)
        div = np.where((div < 0) & ~ok, t + 1, div)
        x = np.where(ok, xn, x)
        y = np.where(ok, yn, y)
    return x, y, div


def python_loop(etas, steps: int):
    """The same map, one run at a time, in plain Python."""
    out = []
    for eta in etas:
        x, y, div = X0, Y0, -1
        for t in range(steps):
            r = x * y - 1.0
            xn = x - eta * (y * r)
            yn = y - eta * (x * r)
            if abs(xn) <= BOUND and abs(yn) <= BOUND:
                x, y = xn, yn
            else:
                div = t + 1
                break
        out.append((x, y, div))
    return out


def run_c(etas: np.ndarray, steps: int):
    """Compile and run the C loop; return (seconds, x, y, div), or None without a compiler."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    nb = len(etas)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "loop.c")
        exe = os.path.join(tmp, "loop")
        eta_file = os.path.join(tmp, "etas.bin")
        with open(src, "w") as f:
            f.write(C_SOURCE)
        np.ascontiguousarray(etas, dtype=np.float64).tofile(eta_file)
        flags = ["-O3", "-march=native", "-ffp-contract=off", "-std=c11"]
        subprocess.run([cc, *flags, "-D_POSIX_C_SOURCE=199309L", src, "-o", exe, "-lm"],
                       check=True)
        out = subprocess.run(
            [exe, str(nb), str(steps), eta_file, repr(BOUND)],
            check=True, capture_output=True, text=True,
        ).stdout.split("\n")
    rows = np.array([line.split() for line in out[1 : nb + 1]], dtype=float)
    return float(out[0]), rows[:, 0], rows[:, 1], rows[:, 2].astype(int)


FIRST_CALL = f"""
import time
t0 = time.perf_counter()
from minimal_eos import GD, ScalarNetwork, simulate
t1 = time.perf_counter()
model = ScalarNetwork(depth=2, x=(1.0,), y=(1.0,))
simulate(model, GD(), [{X0!r}, {Y0!r}], 100, eta=[0.1, 0.5, 1.0])
print(t1 - t0, time.perf_counter() - t1)
"""


def first_call_latency(folder: str) -> tuple[float, float]:
    """(import seconds, first simulate() seconds) in a fresh interpreter caching in ``folder``.

    Both minimal-eos's kernel cache and numba's own cache (of the package's compiled helpers)
    point into ``folder``, so that an empty folder is a cold start.
    """
    paths = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, MINIMAL_EOS_CACHE=folder,
               NUMBA_CACHE_DIR=os.path.join(folder, "numba"),
               PYTHONPATH=os.pathsep.join(p for p in paths if p))
    out = subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def sgd_against_gd(runs: int, steps: int, repeats: int) -> tuple[float, float]:
    """(GD, SGD) updates per second on logistic regression, 16 points in 2 dimensions."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 2))
    model = LogisticRegression(x, np.where(x[:, 0] > 0, 1.0, -1.0))
    etas = np.linspace(0.1, 4.0, runs)
    out = []
    for opt in (GD(), SGD(4)):
        simulate(model, opt, [0.5, -0.5], 2, eta=etas[:4], save=())  # compile
        secs, _ = best_of(repeats, lambda opt=opt: simulate(model, opt, [0.5, -0.5], steps,
                                                            eta=etas, save=()))
        out.append(runs * steps / secs)
    return out[0], out[1]


def print_sgd_line(runs: int, steps: int, repeats: int) -> None:
    gd, sgd = sgd_against_gd(runs, steps, repeats)
    print(f"SGD (batch 4 of 16) vs GD, logistic regression in 2-D: {runs} runs x {steps} steps")
    print(f"  GD  {gd:10.4g} updates/s")
    print(f"  SGD {sgd:10.4g} updates/s")
    print(f"  ratio SGD / GD per update                  {sgd / gd:8.2f}")


def best_of(repeats: int, fn):
    """Smallest wall time of ``repeats`` calls of ``fn``, and its last result."""
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="batch of step sizes")
    parser.add_argument("--steps", type=int, default=10_000, help="steps per run")
    parser.add_argument("--python-runs", type=int, default=8, help="subsample for pure Python")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    parser.add_argument("--sgd-only", action="store_true", help="only the SGD/GD line")
    args = parser.parse_args(argv)
    if args.runs < 2 or args.steps < 1 or args.repeats < 1:
        parser.error("--runs must be >= 2, --steps >= 1 and --repeats >= 1")
    if args.sgd_only:
        print_sgd_line(args.runs, args.steps, args.repeats)
        return 0

    nb, steps = args.runs, args.steps
    etas = np.linspace(0.01, 1.5, nb)
    updates = nb * steps
    model = ScalarNetwork(depth=2, x=(1.0,), y=(1.0,))
    simulate(model, GD(), [X0, Y0], 2, eta=etas[:4], save=())  # compile outside the timing

    def sim(**kwargs):
        return lambda: simulate(model, GD(), [X0, Y0], steps, eta=etas, save=(), **kwargs)

    rates = {}
    threads = numba.config.NUMBA_NUM_THREADS
    for n_threads in sorted({1, threads}):
        numba.set_num_threads(n_threads)
        secs, res = best_of(args.repeats, sim())
        rates[f"simulate, default call, {n_threads} thread(s)"] = updates / secs
        secs, _ = best_of(args.repeats, sim(max_period=1))
        rates[f"simulate, max_period=1, {n_threads} thread(s)"] = updates / secs
    numba.set_num_threads(threads)

    secs, (xn, _, dn) = best_of(args.repeats, lambda: numpy_loop(etas, steps))
    rates["numpy, vectorised over the batch"] = updates / secs
    sub = etas[:: max(1, nb // args.python_runs)][: args.python_runs]
    secs, _ = best_of(1, lambda: python_loop(sub, steps))
    rates["pure Python, subsample"] = len(sub) * steps / secs
    c_runs = [run_c(etas, steps) for _ in range(args.repeats)]
    c = None if c_runs[0] is None else min(c_runs, key=lambda r: r[0])
    if c is not None:
        rates["C -O3 -march=native, 1 thread"] = updates / c[0]

    with tempfile.TemporaryDirectory() as folder:
        cold = first_call_latency(folder)
        warm = first_call_latency(folder)

    print(f"GD on 1/2 (x y - 1)^2: {nb} step sizes x {steps} steps ({updates:.2e} updates),")
    print(f"best of {args.repeats}; numba threads: {threads}")
    for name, rate in rates.items():
        print(f"  {name:42s} {rate:10.4g} updates/s")
    one = rates["simulate, default call, 1 thread(s)"]
    best = rates[f"simulate, default call, {threads} thread(s)"]
    one_mp1 = rates["simulate, max_period=1, 1 thread(s)"]
    best_mp1 = rates[f"simulate, max_period=1, {threads} thread(s)"]
    ratios = {
        "default call / max_period=1 (1 thread)": one / one_mp1,
        "default call / max_period=1 (all threads)": best / best_mp1,
        "simulate (all threads) / numpy": best / rates["numpy, vectorised over the batch"],
        "simulate (all threads) / pure Python": best / rates["pure Python, subsample"],
    }
    if c is not None:
        c_rate = rates["C -O3 -march=native, 1 thread"]
        ratios["simulate (1 thread) / C (1 thread)"] = one / c_rate
        ratios["simulate (all threads) / C (1 thread)"] = best / c_rate
        ratios["simulate per core / C per core"] = best / threads / c_rate
    print("ratios (simulate = the default call):")
    for name, r in ratios.items():
        print(f"  {name:42s} {r:8.2f}")
    print("first simulate() call in a new process (import of minimal_eos excluded):")
    print(f"  empty kernel cache (compiles)              {cold[1]:8.2f} s")
    print(f"  warm kernel cache (loads from disk)        {warm[1]:8.2f} s")
    print(f"  ratio cold / warm                          {cold[1] / warm[1]:8.1f}")
    print(f"  (import minimal_eos: {cold[0]:.2f} s cold, {warm[0]:.2f} s warm)")
    print_sgd_line(nb, max(1, steps // 10), args.repeats)
    x_sim = res.final_theta[:, 0]
    print("final iterates and divergence steps identical, bit for bit:")
    print(f"  to numpy: {np.array_equal(x_sim, xn) and np.array_equal(res.diverged_at, dn)}")
    if c is not None:
        same_c = np.array_equal(x_sim, c[1]) and np.array_equal(res.diverged_at, c[3])
        print(f"  to C:     {same_c}")
    else:
        print("  no C compiler found: C comparison skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
