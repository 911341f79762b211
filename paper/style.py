"""One look for every figure of the paper (matplotlib, Agg backend).

Every figure is made with :func:`figure`, draws its critical sharpness lines with
:func:`edge_line` (horizontal, on a sharpness axis) or :func:`edge_vline` (vertical, on a
step-size axis), labels its axes with the names in :data:`LABELS` and is written by
:func:`save`.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

#: Axis labels shared by the figures (quantity, then unit or what it counts).
LABELS = {
    "step": "step t  [GD iterations]",
    "sharpness": "sharpness S  [top Hessian eigenvalue]",
    "loss": "training loss  [½|f(x) − y|², mean over examples]",
    "eta": "step size η",
}

#: Colours of a sequence of runs in the minimal-model figures (no optimizer is compared).
SEQUENCE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
#: One colour per optimizer or method, the same in every real-network figure; runs of one
#: method at several settings are drawn in its :func:`shades`.
METHODS = {
    "gd": "#1f77b4",
    "heavy_ball": "#2ca02c",
    "nesterov": "#8c564b",
    "sgd": "#17becf",
    "adam": "#e377c2",
    "rmsprop": "#bcbd22",
    "central_flow": "#9467bd",
    "gradient_flow": "#ff7f0e",
}
GD, HEAVY_BALL, NESTEROV, SGD, ADAM, RMSPROP, CENTRAL, FLOW = METHODS.values()
#: A prediction drawn against the measurement (a formula, an orbit, a threshold).
PREDICTION = "#d62728"
EDGE = "0.25"

RC = {
    "figure.dpi": 100,
    "savefig.dpi": 130,
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.5,
    "legend.framealpha": 0.85,
    "mathtext.default": "regular",
}


def shades(color: str, n: int) -> list[tuple[float, float, float]]:
    """``n`` shades of ``color``, light to dark (small to large), for runs of one method.

    Shade ``k`` mixes the colour with white for ``f_k < 0`` and with black for ``f_k > 0``,
    ``c_k = c + f_k (w - c)`` (``w`` white or black, weight ``|f_k|``), with ``f_k`` evenly
    spaced from -0.55 to 0.35; one shade is the colour itself.

    Examples
    --------
    >>> shades("#000000", 1), shades("#ffffff", 2)[1]
    ([(0.0, 0.0, 0.0)], (0.65, 0.65, 0.65))
    """
    from matplotlib.colors import to_rgb

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n!r}")
    base = np.array(to_rgb(color))
    if n == 1:
        return [tuple(float(v) for v in base)]
    out = []
    for f in np.linspace(-0.55, 0.35, n):
        target = np.ones(3) if f < 0 else np.zeros(3)
        out.append(tuple(float(v) for v in np.round(base + abs(f) * (target - base), 6)))
    return out


def figure(ncols: int = 1, nrows: int = 1, *, width: float | None = None,
           height: float = 3.6, **kwargs):
    """A new figure with the house style: ``(fig, axes)`` as :func:`plt.subplots`."""
    plt.rcParams.update(RC)
    if width is None:
        width = 4.6 * ncols + 0.6
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(width, height * nrows), **kwargs)


def edge_line(ax, value: float, *, label: str | None = "2/η", color: str = EDGE,
              xmin: float | None = None, xmax: float | None = None, text: bool = True,
              ls: str = "--") -> None:
    """A dashed horizontal line at a critical sharpness (``2/eta`` or a momentum edge).

    With ``xmin``/``xmax`` (data coordinates) the line spans only that range (e.g. after
    a step-size drop); ``text`` writes ``label`` at the line's right end.
    """
    if xmin is None and xmax is None:
        ax.axhline(value, color=color, ls=ls, lw=1.1, zorder=1)
        x_text = 1.0
        transform = ax.get_yaxis_transform()
    else:
        lo, hi = ax.get_xlim()
        x0 = lo if xmin is None else xmin
        x1 = hi if xmax is None else xmax
        ax.plot([x0, x1], [value, value], color=color, ls=ls, lw=1.1, zorder=1)
        x_text, transform = x1, ax.transData
    if text and label:
        ax.text(x_text, value, f" {label}", color=color, va="center", ha="left",
                fontsize=8.5, transform=transform, clip_on=False)


def edge_vline(ax, value: float, *, label: str | None = "η = 2/S*", color: str = EDGE,
               y: float = 0.97, ls: str = "--", above: bool = False) -> None:
    """A dashed vertical line at a critical step size, labelled near the top.

    With ``above`` the label sits above the axes, centred on the line.
    """
    ax.axvline(value, color=color, ls=ls, lw=1.1, zorder=1)
    if label and above:
        ax.text(value, 1.01, label, color=color, va="bottom", ha="center", fontsize=8.5,
                transform=ax.get_xaxis_transform())
    elif label:
        ax.text(value, y, f" {label}", color=color, va="top", ha="left", fontsize=8.5,
                transform=ax.get_xaxis_transform())


def log_y(ax) -> None:
    """Log-scale y axis with plain numbers (0.3, not 3 x 10^-1); call after plotting."""
    _log_axis(ax, "y")


def log_x(ax) -> None:
    """Log-scale x axis with plain numbers; call after plotting."""
    _log_axis(ax, "x")


def _log_axis(ax, which: str) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    getattr(ax, f"set_{which}scale")("log")
    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = sorted(getattr(ax, f"get_{which}lim")())
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(plain)
    # minor ticks (2, 3, ... times a power of ten): all labelled on a short range, only
    # 2, 3 and 5 on up to a decade and a half, none on longer ranges
    ratio = hi / lo

    def minor(v: float, _) -> str:
        mantissa = round(v / 10 ** np.floor(np.log10(v) + 1e-9))
        return f"{v:g}" if ratio < 4 or mantissa in (2, 3, 5) else ""

    axis.set_minor_formatter(FuncFormatter(minor) if ratio < 30 else NullFormatter())


def panel_label(ax, letter: str) -> None:
    """``(a)``, ``(b)``... in the top-left corner, outside the axes."""
    ax.text(-0.02, 1.02, f"({letter})", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=11, fontweight="bold")


def moving_average(values, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred moving average over ``window`` (odd) points: ``(index, average)``."""
    v = np.asarray(values, dtype=float)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer >= 1; got {window}")
    if len(v) < window:
        return np.arange(0), np.array([])
    half = window // 2
    avg = np.convolve(v, np.ones(window) / window, mode="valid")
    return np.arange(half, len(v) - half), avg


def save(fig, path: str | os.PathLike) -> str:
    """Write ``fig`` as PNG (atomically), close it, and return the path."""
    from validation.checkpoint import atomic_write

    path = os.fspath(path)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))
    finally:
        plt.close(fig)
    return path
