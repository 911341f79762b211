"""``python -m validation.compare``: the theory's predictions against real networks.

Trains a network with full-batch GD (or momentum), integrates gradient flow and the
central flow from the same initialisation, tracks the sharpness, and prints a table of
predictions beside measurements, each with its error, tolerance and whether it holds.
Writes ``report.json`` and figures to the output folder. Run with ``--help``.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from validation.cli import OneLineParser  # noqa: E402

CHECK_HELP = """\
checks (comma-separated; 'default' or 'all'):
  edge                  (a) the sharpness rises, then hovers at the critical sharpness
                        (--loss ce: reaches 2/eta, hovers, then declines as the loss falls)
  momentum              (b) heavy ball plateaus at 2(1+beta)/eta (a second run)
  drop                  (c) after a step-size drop, sharpening resumes to the new 2/eta
  central-flow          (d) central flow's time-averaged loss and sharpness vs GD
  self-stabilization    (e) mean x^2 along the top eigenvector vs 2 alpha/beta at onset
  flow-distance         (f) GD stays closer to the central flow than to gradient flow
  constrained           GD stays closer to the constrained trajectory than to gradient flow
  quadratic-thresholds  symbolic stability thresholds vs simulated divergence on quadratics
  batch-sharpness       (h) SGD: batch sharpness hovers at 2/eta, lambda_max below it, and
                        the gap 2/eta - lambda_max vs eta beta sigma_u^2 / (4 alpha)
  preconditioned-edge   (i) Adam/RMSProp: lambda_max(P^-1 H) hovers at the frozen-P
                        threshold, the raw sharpness does not
  rmsprop-central-flow  (j) RMSProp: its central flow's time-averaged loss, edge and
                        distance to RMSProp's centre vs the stable flow's
default: edge, central-flow, self-stabilization, flow-distance, quadratic-thresholds
(with --optimizer heavy_ball or nesterov: edge, quadratic-thresholds; sgd:
batch-sharpness; adam or rmsprop: preconditioned-edge)
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    from validation.experiment import OPTIMIZER_DEFAULTS, Config
    from validation.preflight import MAX_HOURS

    d = Config()
    p = OneLineParser(
        prog="python -m validation.compare",
        description="Check edge-of-stability predictions on a real network (torch).",
        epilog=CHECK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=d.dataset,
                   help="mnist1d | digits | cifar10 | synthetic (default %(default)s)")
    g.add_argument("--cifar-path", default=None,
                   help="folder with the CIFAR-10 python batches (data_batch_1..5, test_batch)")
    g.add_argument("--n", type=int, default=d.n, help="training examples (default %(default)s)")
    g.add_argument("--classes", default=None,
                   help="comma-separated classes to keep, e.g. 0,1 (default: all)")
    g.add_argument("--standardize", default=d.standardize,
                   help="feature | global | none (default %(default)s)")
    g = p.add_argument_group("network and loss")
    g.add_argument("--arch", default=d.arch,
                   help="mlp | cnn | linear | transformer (default %(default)s)")
    g.add_argument("--depth", type=int, default=d.depth, help="hidden layers (default %(default)s)")
    g.add_argument("--width", type=int, default=d.width,
                   help="hidden width or channels (default %(default)s)")
    g.add_argument("--activation", default=d.activation,
                   help="tanh | relu | elu | softplus | gelu (default %(default)s)")
    g.add_argument("--parametrization", default=d.parametrization,
                   help="standard | ntk (default %(default)s)")
    g.add_argument("--readout-scale", type=float, default=d.readout_scale,
                   help="factor on the initial read-out weights; 0 starts the read-out at "
                        "zero (default %(default)s)")
    g.add_argument("--loss", default=d.loss, help="mse | ce (default %(default)s)")
    g.add_argument("--dtype", default=d.dtype, help="float32 | float64 (default %(default)s)")
    g = p.add_argument_group("training")
    g.add_argument("--optimizer", default=d.optimizer,
                   help="gd | heavy_ball | nesterov | sgd | adam | rmsprop (default "
                        "%(default)s)")
    g.add_argument("--beta", type=float, default=d.beta,
                   help="momentum of --optimizer (default %(default)s)")
    g.add_argument("--eta", type=float, default=None,
                   help=f"step size (default {d.eta}; sgd {OPTIMIZER_DEFAULTS['sgd']['eta']}, "
                        f"adam and rmsprop {OPTIMIZER_DEFAULTS['adam']['eta']})")
    g.add_argument("--steps", type=int, default=None,
                   help=f"steps (default {d.steps}; sgd {OPTIMIZER_DEFAULTS['sgd']['steps']}, "
                        f"adam and rmsprop {OPTIMIZER_DEFAULTS['adam']['steps']})")
    g.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="examples per mini-batch of --optimizer sgd, drawn without "
                        "replacement (default %(default)s)")
    g.add_argument("--bs-batches", type=int, default=d.bs_batches,
                   help="mini-batches sampled per batch-sharpness estimate (default "
                        "%(default)s)")
    g.add_argument("--beta1", type=float, default=d.beta1,
                   help="Adam's first-moment decay (default %(default)s)")
    g.add_argument("--beta2", type=float, default=d.beta2,
                   help="Adam's second-moment decay, RMSProp's alpha (default %(default)s)")
    g.add_argument("--eps", type=float, default=d.eps,
                   help="Adam's and RMSProp's eps (default %(default)s)")
    g.add_argument("--drop-step", type=int, default=None,
                   help="step of the step-size drop for check 'drop' (default: steps // 2)")
    g.add_argument("--drop-factor", type=float, default=d.drop_factor,
                   help="eta is divided by this at the drop (default %(default)s)")
    g.add_argument("--momentum-beta", type=float, default=d.momentum_beta,
                   help="beta of the heavy-ball run of check 'momentum' (default %(default)s)")
    g.add_argument("--momentum-eta", type=float, default=None,
                   help="eta of that run (default: --eta)")
    g = p.add_argument_group("run")
    g.add_argument("--checks", default="default", help="predictions to check (see below)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda (default %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="seed (default %(default)s)")
    g.add_argument("--out", default=os.path.join("results", "compare"),
                   help="output folder (default %(default)s)")
    g.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default %(default)s; the quadratic checks run "
                        "in a second process)")
    g.add_argument("--max-hours", type=float, default=MAX_HOURS,
                   help="refuse a run whose estimated time exceeds this (default "
                        "%(default)s; see README)")
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help="steps between checkpoints (default %(default)s)")
    g.add_argument("--cache", default=os.path.join("results", "cache"),
                   help="folder of cached quadratic threshold checks, reused while their "
                        "parameters and code are unchanged (default %(default)s)")
    g.add_argument("--no-cache", action="store_true",
                   help="recompute the quadratic threshold checks; read and write no cache")
    g.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --out, if any (refused when it "
                        "is corrupted or was written with other options, device or "
                        "--threads)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--no-figures", action="store_true", help="skip the figures")
    g = p.add_argument_group("numerics")
    g.add_argument("--track-every", type=int, default=None,
                   help=f"steps between sharpness estimates (default {d.track_every}; sgd "
                        f"{OPTIMIZER_DEFAULTS['sgd']['track_every']})")
    g.add_argument("--record-every", type=int, default=d.record_every,
                   help="steps between flow records (default %(default)s)")
    g.add_argument("--eigs", type=int, default=d.eigs,
                   help="eigenpairs tracked by the central flow (default %(default)s)")
    g.add_argument("--track-vectors", type=int, default=d.track_vectors,
                   help="at least this many eigenpairs in every tracker; more follow an "
                        "eigenvalue that overtakes the top one (default %(default)s)")
    g.add_argument("--refresh-every", type=int, default=d.refresh_every,
                   help="a cold Lanczos restart every this many estimates, 0 for never "
                        "(default %(default)s)")
    g.add_argument("--tol", type=float, default=d.tol,
                   help="relative accuracy of tracked eigenvalues (default %(default)s; the "
                        "central flow projects with at most validation.flows.EDGE_TOL)")
    g.add_argument("--window", type=int, default=d.window,
                   help="steps of time averages, even (default %(default)s)")
    g.add_argument("--chunk-size", type=int, default=d.chunk_size,
                   help="examples per chunk of every pass (default %(default)s)")
    return p


def config_from_args(args: argparse.Namespace):
    """Build the :class:`~validation.experiment.Config` (ConfigError naming the field)."""
    from validation.experiment import (
        CHECK_OPTIMIZERS,
        CHECKS,
        DEFAULT_CHECKS,
        GD_ONLY,
        OPTIMIZER_DEFAULTS,
        Config,
    )
    from validation.preflight import ConfigError

    own = OPTIMIZER_DEFAULTS.get(args.optimizer, {})
    eta = own.get("eta", Config.eta) if args.eta is None else args.eta
    steps = own.get("steps", Config.steps) if args.steps is None else args.steps
    track_every = (own.get("track_every", Config.track_every) if args.track_every is None
                   else args.track_every)
    if args.checks == "default" and own:
        checks = own["checks"]
    elif args.checks == "default":
        checks = tuple(c for c in DEFAULT_CHECKS if args.optimizer == "gd" or c not in GD_ONLY)
    elif args.checks == "all" and own:
        checks = own["checks"] + ("momentum", "quadratic-thresholds")
    elif args.checks == "all":
        checks = tuple(c for c in CHECKS if (args.optimizer == "gd" or c not in GD_ONLY)
                       and c not in CHECK_OPTIMIZERS)
    else:
        checks = tuple(c.strip() for c in args.checks.split(",") if c.strip())
        for c in checks:
            if c not in CHECKS:
                raise ConfigError("checks", f"unknown check {c!r}; accepted: "
                                  f"{', '.join(CHECKS)}, default, all")
    classes = None
    if args.classes is not None:
        try:
            classes = tuple(int(c) for c in args.classes.split(","))
        except ValueError:
            raise ConfigError("classes", f"classes must be comma-separated integers; got "
                              f"{args.classes!r}") from None
    drop_step = args.drop_step
    if drop_step is None and "drop" in checks:
        drop_step = steps // 2
    return Config(
        dataset=args.dataset, n=args.n, classes=classes, standardize=args.standardize,
        cifar_path=args.cifar_path, arch=args.arch, depth=args.depth, width=args.width,
        activation=args.activation, parametrization=args.parametrization,
        readout_scale=args.readout_scale, loss=args.loss, dtype=args.dtype,
        optimizer=args.optimizer, beta=args.beta, eta=eta, steps=steps,
        batch_size=args.batch_size, bs_batches=args.bs_batches, beta1=args.beta1,
        beta2=args.beta2, eps=args.eps,
        drop_step=drop_step, drop_factor=args.drop_factor, momentum_beta=args.momentum_beta,
        momentum_eta=args.momentum_eta, checks=checks, seed=args.seed,
        track_every=track_every, record_every=args.record_every, eigs=args.eigs,
        track_vectors=args.track_vectors, refresh_every=args.refresh_every,
        tol=args.tol, window=args.window, chunk_size=args.chunk_size,
        checkpoint_every=args.checkpoint_every)


def check_run_options(args: argparse.Namespace) -> None:
    """Check the options that are not fields of the run: threads, time bound, output folder.

    Raises
    ------
    ConfigError
        ``threads`` below 1 or above this machine's cores; ``max_hours`` not a positive
        number; ``out`` that is a file, lies under a file, or cannot be written.
    """
    from validation.preflight import ConfigError, check_output_folder, usable_cores

    cores = usable_cores()
    if not 1 <= args.threads <= cores:
        raise ConfigError("threads", f"threads must lie in [1, {cores}] (the cores of this "
                          f"machine); got {args.threads}")
    if not (math.isfinite(args.max_hours) and args.max_hours > 0):
        raise ConfigError("max_hours", f"max_hours must be a finite number > 0; got "
                          f"{args.max_hours}")
    check_output_folder(args.out)


#: Parameters of :func:`analysis.thresholds.quadratic_threshold_checks` in the default run.
QUADRATIC_CHECKS = {"betas": [0.5, 0.9], "spectrum": [1.0, 0.3], "steps": 50_000}


def source_digest() -> str:
    """SHA-256 of the code the quadratic checks run: ``analysis/thresholds.py`` and every
    module of ``minimal_eos`` (so that a change of the code recomputes them)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = [os.path.join(root, "analysis", "thresholds.py")]
    for folder, dirs, names in os.walk(os.path.join(root, "minimal_eos")):
        dirs.sort()
        files += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".py")]
    digest = hashlib.sha256()
    for path in files:
        digest.update(os.path.relpath(path, root).encode() + b"\0")
        with open(path, "rb") as fh:
            digest.update(fh.read() + b"\0")
    return digest.hexdigest()


def quadratic_job(params: dict | None = None):
    """The quadratic threshold checks as a cached :class:`~validation.cache.Job`.

    Its configuration is ``params`` (default :data:`QUADRATIC_CHECKS`) and the
    :func:`source_digest` of the code, so the cached rows are reused until either changes.
    """
    from validation.cache import Job

    params = QUADRATIC_CHECKS if params is None else params
    return Job("quadratic-thresholds", {**params, "source": source_digest()}, quadratic_result,
               label="quadratic threshold checks")


def quadratic_result(config: dict) -> dict:
    """Run the checks of a :func:`quadratic_job` configuration: ``{"rows": [...]}``."""
    from analysis.thresholds import quadratic_threshold_checks
    from validation.predictions import row

    rows = []
    for r in quadratic_threshold_checks(betas=config["betas"], spectrum=config["spectrum"],
                                        steps=config["steps"]):
        rows.append(row("quadratic-thresholds", r["name"], "critical step size on a quadratic",
                        r["predicted"], r["measured"], r["error"], r["tolerance"]))
    return {"rows": rows}


def _timed(job) -> tuple[dict, float]:
    t0 = time.perf_counter()
    result = job.func(job.config)
    return result, time.perf_counter() - t0


class QuadraticChecks:
    """The quadratic threshold rows: read from ``cache``, or computed and then written there.

    Parameters
    ----------
    job : Job
        See :func:`quadratic_job`.
    cache : Cache or None
        Where results live; None computes without reading or writing.
    process : bool
        Compute in a second process (they use numba), started at construction so that
        it runs beside the training; False computes in :meth:`result`. The process dies
        with this one, even when this one is killed
        (:func:`validation.children.die_with_parent`).
    """

    def __init__(self, job, cache, *, process: bool = True) -> None:
        self.job, self.cache = job, cache
        self.cached = cache is not None and cache.has(job)
        self.pool = self.future = None
        if not self.cached and process:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            from validation.children import die_with_parent

            self.pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"),
                                            initializer=die_with_parent,
                                            initargs=(os.getpid(),))
            self.future = self.pool.submit(_timed, job)

    def result(self) -> tuple[list, float | None]:
        """``(rows, seconds of computation)``; a failure is one failing row, never cached."""
        from validation.cache import SECONDS

        if self.cached:
            out = self.cache.load(self.job)
            return out["rows"], out[SECONDS]
        try:
            if self.future is not None:
                result, seconds = self.future.result()
            else:
                result, seconds = _timed(self.job)
        except Exception as exc:  # reported as a failing row, not a crash
            from validation.predictions import row

            nan = float("nan")
            return [row("quadratic-thresholds", "quadratic thresholds", "", nan, nan, nan, nan,
                        f"could not run: {type(exc).__name__}: {exc}")], None
        finally:
            if self.pool is not None:
                self.pool.shutdown()
        if self.cache is not None:
            self.cache.save(self.job, result, seconds=round(seconds, 3))
        return result["rows"], seconds


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 when the run completed)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    import torch

    from validation.derivatives import DerivativeError, check_run
    from validation.experiment import pick_device
    from validation.preflight import ConfigError, check_config

    # every check before any work: options, fields, data, size, derivatives
    try:
        check_run_options(args)
        config = config_from_args(args)
        check_config(config, max_hours=args.max_hours)
        try:
            checked = check_run(config)
        except DerivativeError as exc:
            raise ConfigError("arch", str(exc)) from None
        try:
            device = pick_device(args.device)
        except ValueError as exc:
            raise ConfigError("device", str(exc)) from None
    except ConfigError as exc:
        parser.error(f"argument --{exc.field.replace('_', '-')}: {exc}")
    except ValueError as exc:
        parser.error(str(exc))
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        parser.error(f"argument --out: cannot create {args.out!r}: {exc.strerror or exc}")
    from validation.checkpoint import CheckpointError, load_checkpoint
    from validation.experiment import CHECKPOINT, checkpoint_meta, run_experiment
    from validation.predictions import evaluate
    from validation.report import build_report, format_table, write_figures, write_report

    torch.set_num_threads(args.threads)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    ckpt = os.path.join(args.out, CHECKPOINT)
    if args.resume and os.path.exists(ckpt):
        # checked in full (checksum, configuration, content) before any work starts
        try:
            load_checkpoint(ckpt, checkpoint_meta(config, device))
        except CheckpointError as exc:
            parser.error(f"argument --resume: {exc}")
    quad = None
    if "quadratic-thresholds" in config.checks:
        from validation.cache import Cache

        quad = QuadraticChecks(quadratic_job(), None if args.no_cache else Cache(args.cache))
    t_run = time.perf_counter()
    results = run_experiment(config, out_dir=args.out, device=str(device), resume=args.resume,
                             progress=not args.no_progress, checked=checked)
    run_s = time.perf_counter() - t_run
    rows = evaluate(results, config)
    quad_s = None
    if quad is not None:
        qrows, quad_s = quad.result()
        rows += qrows
    timing = {"device": str(device), "threads": args.threads, "training_s": round(run_s, 2),
              "quadratic_checks_s": None if quad_s is None else round(quad_s, 2),
              "quadratic_checks_cached": None if quad is None else quad.cached,
              "resumed_from": results["resumed_from"]}
    report = build_report(config.to_dict(), rows, results, timing)
    print(format_table(rows, diverged=report["summary"]["divergences"]))
    figures = [] if args.no_figures else write_figures(args.out, report)
    timing["wall_s"] = round(time.perf_counter() - _T0, 2)
    path = write_report(args.out, report)
    if os.path.exists(ckpt):
        os.remove(ckpt)
    if quad is not None and quad.cached:
        print(f"quadratic thresholds: read from {quad.cache.path(quad.job)}")
    print(f"report: {path}")
    for f in figures:
        print(f"figure: {f}")
    print(f"wall time: {timing['wall_s']:.1f} s (training and flows {run_s:.1f} s, device "
          f"{device}, {args.threads} thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
