"""Stochastic self-stabilization: the measured equilibrium sharpness gap against the formula.

``python -m analysis.stochastic_stabilization`` runs the reduced map of Damian et al. with
gradient noise along the top eigenvector
(:func:`minimal_eos.stabilization.stochastic_equilibrium`) over a grid of ``eta``, ``alpha``,
``beta``, noise variance ``sigma_u^2`` and damping, and compares the time-averaged gap
``2/eta - mean S`` with ``Delta S = eta beta sigma_u^2 / (4 alpha)``
(:func:`minimal_eos.stabilization.stochastic_sharpness_gap`).
It writes ``gap.csv`` (one row per grid point), ``gap.json`` (configuration and summary)
and ``gap.png`` (measured gap against the formula, with ``y = x``).

The noise variance is set through the noise level ``q = Delta S / sqrt(2 alpha)``: the
formula treats ``y`` as frozen while ``x^2`` relaxes, at the rate ``2 eta Delta S``, and
``y`` turns at the angular frequency ``eta sqrt(2 alpha)`` of the four-phase cycle near its
centre; ``q`` is half the ratio of the two.

References
----------
Liao, Kolomvaki, Kyrillidis, arXiv 2604.21016; Damian, Nichani, Lee, arXiv 2209.15594.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from minimal_eos._checks import positive_float, positive_int
from minimal_eos.stabilization import ReducedMap, stochastic_equilibrium

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "stochastic_stabilization"


@dataclass(frozen=True)
class GapRow:
    """One grid point: parameters, the measured gap and the formula."""

    eta: float
    alpha: float
    beta: float
    damping: float
    q: float
    sigma_u2: float
    predicted: float
    measured: float
    stderr: float
    relative_error: float
    x2: float
    diverged: int
    runs: int


def noise_for_level(q: float, eta: float, alpha: float, beta: float) -> float:
    """``sigma_u^2`` whose predicted gap is ``q sqrt(2 alpha)``:
    ``4 alpha q sqrt(2 alpha) / (eta beta)``."""
    return 4.0 * alpha * q * np.sqrt(2.0 * alpha) / (eta * beta)


def gap_grid(
    etas: Sequence[float],
    alphas: Sequence[float],
    betas: Sequence[float],
    levels: Sequence[float],
    dampings: Sequence[float] = (0.0,),
    *,
    steps: int = 200_000,
    burn_in: int = 20_000,
    runs: int = 16,
    seed: int = 0,
    progress: bool = False,
) -> list[GapRow]:
    """Measure the equilibrium gap at every point of the grid.

    Parameters
    ----------
    etas, alphas, betas
        The reduced map's parameters.
    levels
        Noise levels ``q = Delta S / sqrt(2 alpha)`` (see :func:`noise_for_level`).
    dampings
        Values of ``h`` (0: the map of Damian et al.).
    steps, burn_in, runs, seed
        As in :func:`minimal_eos.stabilization.stochastic_equilibrium`; every grid point
        uses the same seed (its runs are keyed by it).
    progress
        Show a tqdm progress bar.

    Returns
    -------
    list of GapRow
    """
    grid = list(itertools.product(etas, alphas, betas, dampings, levels))
    for name, values in (("etas", etas), ("alphas", alphas), ("betas", betas),
                         ("levels", levels)):
        for v in values:
            positive_float(v, name)
    for h in dampings:
        positive_float(h, "dampings", allow_zero=True)
    steps = positive_int(steps, "steps")
    if progress:
        from tqdm import tqdm

        grid = tqdm(grid, desc="stochastic gap")
    rows = []
    for eta, alpha, beta, h, q in grid:
        s2 = noise_for_level(q, eta, alpha, beta)
        res = stochastic_equilibrium(ReducedMap(eta, alpha, beta), s2, steps=steps,
                                     burn_in=burn_in, damping=h, runs=runs, seed=seed)
        rows.append(GapRow(eta, alpha, beta, h, q, s2, res.predicted, res.gap, res.gap_stderr,
                           res.relative_error, res.x2, res.diverged, res.runs))
    return rows


def summary(rows: Sequence[GapRow]) -> list[dict]:
    """Per (damping, ``a = eta^2 alpha``, noise level ``q``), the map's essential parameters
    (``beta`` only rescales ``x``): grid points, how many had a diverging run, and over the
    others the largest relative error and the range of the ratio measured / predicted."""
    out = []
    keys = sorted({(r.damping, float(f"{r.eta**2 * r.alpha:.6g}"), r.q) for r in rows})
    for h, a, q in keys:
        sel = [r for r in rows
               if r.damping == h and float(f"{r.eta**2 * r.alpha:.6g}") == a and r.q == q]
        ok = [r for r in sel if r.diverged == 0]
        ratio = np.array([r.measured / r.predicted for r in ok])
        out.append({
            "damping": h, "a": a, "q": q, "points": len(sel),
            "with_divergence": len(sel) - len(ok),
            "max_relative_error": float(np.abs(ratio - 1).max()) if ok else None,
            "min_ratio": float(ratio.min()) if ok else None,
            "max_ratio": float(ratio.max()) if ok else None,
        })
    return out


def plot(rows: Sequence[GapRow], path: Path) -> None:
    """Measured against predicted gap, log-log, with ``y = x``; hollow markers: measured
    gap negative (sharpness above ``2/eta`` on average), drawn at its magnitude."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len({r.damping for r in rows}), figsize=(10, 4.2),
                             squeeze=False)
    levels = sorted({r.q for r in rows})
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(levels)))
    for ax, h in zip(axes[0], sorted({r.damping for r in rows}), strict=True):
        sel = [r for r in rows if r.damping == h and r.diverged == 0]
        for q, col in zip(levels, colours, strict=True):
            pts = [r for r in sel if r.q == q]
            pos = [r for r in pts if r.measured > 0]
            neg = [r for r in pts if r.measured <= 0]
            ax.scatter([r.predicted for r in pos], [r.measured for r in pos], color=col, s=18,
                       label=f"q = {q:g}")
            ax.scatter([r.predicted for r in neg], [max(-r.measured, 1e-12) for r in neg],
                       facecolors="none", edgecolors=col, s=18)
        lims = [min(r.predicted for r in rows) / 2, max(r.predicted for r in rows) * 2]
        ax.plot(lims, lims, "k--", lw=1, label="y = x")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"formula $\eta\beta\sigma_u^2/(4\alpha)$")
        ax.set_ylabel(r"measured $2/\eta - \langle S\rangle$")
        ax.set_title(f"damping h = {h:g}" + (" (Damian et al.'s map)" if h == 0 else ""))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(rows: Sequence[GapRow], config: dict, out: Path) -> None:
    """Write ``gap.csv``, ``gap.json`` and ``gap.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "gap.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: f"{v:.10g}" if isinstance(v, float) else v
                             for k, v in asdict(r).items()})
    with open(out / "gap.json", "w") as fh:
        json.dump({"config": config, "summary": summary(rows)}, fh, indent=1)
    plot(rows, out / "gap.png")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the grid, print the summary, write the files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etas", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 2.0])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.5, 2.0])
    parser.add_argument("--levels", type=float, nargs="+", default=[0.03, 0.1, 0.3, 1.0, 3.0])
    parser.add_argument("--dampings", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--burn-in", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    config = {k: v for k, v in vars(args).items() if k != "out"}
    try:
        rows = gap_grid(args.etas, args.alphas, args.betas, args.levels, args.dampings,
                        steps=args.steps, burn_in=args.burn_in, runs=args.runs, seed=args.seed,
                        progress=True)
    except ValueError as exc:
        parser.error(str(exc))
    write(rows, config, args.out)
    print(f"{'h':>4} {'a=eta^2 alpha':>13} {'q':>5} {'points':>6} {'diverged':>8} "
          f"{'max rel err':>11} {'measured/formula':>17}")
    for s in summary(rows):
        head = (f"{s['damping']:4g} {s['a']:13g} {s['q']:5g} {s['points']:6d} "
                f"{s['with_divergence']:8d}")
        if s["max_relative_error"] is None:
            print(head)
            continue
        print(f"{head} {s['max_relative_error']:11.3f} "
              f"{s['min_ratio']:8.3f}..{s['max_ratio']:<7.3f}")
    print(f"wrote {args.out / 'gap.csv'}, gap.json, gap.png")


if __name__ == "__main__":
    main()
