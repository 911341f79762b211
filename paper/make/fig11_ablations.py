"""Figure 11: how width, depth and data size change progressive sharpening (MNIST-1D)."""

from __future__ import annotations

import dataclasses
from itertools import pairwise

import numpy as np

from paper import style
from paper.build import Context, Section
from paper.cache import Job
from paper.runs import describe_network, first_reach, network_job

NAME = "ablations"
NUMBER = 11
TITLE = "Width, depth and data size change progressive sharpening"


def variants(quick: bool) -> dict:
    """``{panel: (base config, field, values)}``; every other field stays at the base."""
    from validation.experiment import Config

    if quick:
        base = Config(n=100, width=16, eta=0.3, steps=100, track_every=10, checks=("edge",))
        ntk = Config(n=100, width=16, eta=1.0, steps=100, track_every=10, checks=("edge",),
                     parametrization="ntk")
        return {"width": (ntk, "width", (8, 32)), "depth": (base, "depth", (1, 3)),
                "n": (base, "n", (50, 200))}
    base = Config(n=1000, width=64, eta=0.1, steps=1000, track_every=10, checks=("edge",))
    ntk = Config(n=1000, width=64, eta=1.0, steps=1500, track_every=10, checks=("edge",),
                 parametrization="ntk")
    return {"width": (ntk, "width", (16, 64, 256)), "depth": (base, "depth", (1, 2, 3, 4)),
            "n": (base, "n", (250, 500, 1000, 2000))}


def seeds(quick: bool) -> tuple[int, ...]:
    """The seeds of every setting (each draws its own data sample and initialisation)."""
    return (0, 1) if quick else (0, 1, 2)


def _configs(quick: bool) -> list:
    out = []
    for panel, (base, field, values) in variants(quick).items():
        for v in values:
            for seed in seeds(quick):
                out.append((panel, v, dataclasses.replace(base, **{field: v, "seed": seed})))
    return out


def jobs(quick: bool) -> list[Job]:
    return [network_job(c, label=f"MNIST-1D, {panel} {v}, seed {c.seed}")
            for panel, v, c in _configs(quick)]


LABELS = {"width": "width {}", "depth": "{} hidden layer(s)", "n": "n = {} examples"}
TITLES = {"width": "Width (NTK parametrization)", "depth": "Depth", "n": "Data size"}
#: Cohen et al.'s observations: (+1 sharpens more / -1 less as the value grows, who).
EXPECTED = {"width": (-1, "wider networks"), "depth": (1, "deeper networks"),
            "n": (1, "larger training sets")}
_TREND_TEXT = {1: "sharpen more", -1: "sharpen less", 0: "are not ordered"}
_ORDER_TEXT = {1: "increases", -1: "decreases", 0: "is not ordered"}


def _trend(values: list) -> int:
    """+1 increasing, -1 decreasing, 0 neither."""
    steps = [b - a for a, b in pairwise(values)]
    if all(d > 0 for d in steps):
        return 1
    if all(d < 0 for d in steps):
        return -1
    return 0


def spread(values) -> dict:
    """Median, smallest and largest of the values over seeds."""
    v = np.asarray(values, dtype=float)
    return {"median": float(np.median(v)), "min": float(np.min(v)), "max": float(np.max(v))}


def order_over_time(t, curves, expected: int) -> dict:
    """How the settings of a panel are ordered at every tracked step.

    ``curves`` holds one series per setting (in the panel's order of values), on the
    tracked steps ``t``. At each step the settings are ordered as expected when
    :func:`_trend` of their values equals ``expected`` and reversed when it equals
    ``-expected``. Returns the fractions of steps of each kind and the last step of the
    first run of expected order and the first step of the final run of reversed order
    (None when absent).
    """
    t = np.asarray(t)
    trends = np.array([_trend([float(c[k]) for c in curves]) for k in range(len(t))])
    good, bad = trends == expected, trends == -expected
    lead = int(np.argmin(good)) if not good.all() else len(t)
    tail = len(t) - int(np.argmin(bad[::-1])) if not bad.all() else 0
    return {"expected": float(good.mean()), "reversed": float(bad.mean()),
            "expected_until": int(t[lead - 1]) if lead > 0 else None,
            "reversed_from": int(t[tail]) if tail < len(t) and bad[-1] else None}


def make(ctx: Context) -> Section:
    specs = variants(ctx.quick)
    seed_list = seeds(ctx.quick)
    fig, axes = style.figure(3, 2, width=15.0, height=3.8)
    numbers: dict = {}
    for col, (panel, (base, field, values)) in enumerate(specs.items()):
        ax, axl = axes[0, col], axes[1, col]
        rows, medians, t_common = [], [], None
        for v, color in zip(values, style.shades(style.GD, len(values)), strict=True):
            label = LABELS[panel].format(v)
            per_seed = []
            for seed in seed_list:
                c = dataclasses.replace(base, **{field: v, "seed": seed})
                r = ctx.result(network_job(c))
                t, sh, loss = r["main.sharpness_t"], r["main.sharpness"], r["main.loss"]
                tt = t[t < len(loss)]
                per_seed.append({"t": t, "s": sh, "loss_tracked": loss[tt],
                                 "s_tracked": sh[: len(tt)], "loss_end": float(loss[-1]),
                                 "edge": float(r["main.edge"]),
                                 "params": int(r["num_params"])})
                axl.plot(loss[tt], sh[: len(tt)], color=color, lw=0.8, alpha=0.8,
                         label=label if seed == seed_list[0] else None)
            k = min(len(p["t"]) for p in per_seed)
            t = per_seed[0]["t"][:k]
            stack = np.array([p["s"][:k] for p in per_seed])
            med = np.median(stack, axis=0)
            ax.fill_between(t, stack.min(axis=0), stack.max(axis=0), color=color, alpha=0.25,
                            lw=0)
            ax.plot(t, med, color=color, label=label)
            medians.append(med / med[0])
            t_common = t if t_common is None else t_common[: min(len(t_common), k)]
            rows.append({"value": v, "per_seed": per_seed})
        common = max(p["loss_end"] for row in rows for p in row["per_seed"])
        for row in rows:
            s0, s_end, growth, at_loss, onset = [], [], [], [], []
            for p in row.pop("per_seed"):
                lt, st = p["loss_tracked"], p["s_tracked"]
                j = next(j for j, x in enumerate(lt) if x <= common)
                s0.append(float(p["s"][0]))
                s_end.append(float(p["s"][-1]))
                growth.append(float(p["s"][-1] / p["s"][0]))
                at_loss.append(float(st[j] / p["s"][0]))
                onset.append(first_reach(p["t"], p["s"], p["edge"]))
                row["params"] = p["params"]
            row.update({"s0": spread(s0), "s_end": spread(s_end), "growth": spread(growth),
                        "rise": spread(np.array(s_end) - np.array(s0)),
                        "growth_at_common_loss": spread(at_loss),
                        "reached_edge": sum(o is not None for o in onset)})
        # from the first tracked step after 0 (at 0 every ratio is 1)
        n_t = len(t_common)
        order = order_over_time(t_common[1:], [m[1:n_t] for m in medians],
                                EXPECTED[panel][0])
        edge = 2 / base.eta
        style.edge_line(ax, edge, label="2/η")
        style.edge_line(axl, edge, label="2/η")
        ax.set_xlabel(style.LABELS["step"])
        ax.set_ylabel(style.LABELS["sharpness"])
        ax.set_title(f"{TITLES[panel]}: η = {base.eta:g}, {base.steps} steps")
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi + 0.3 * (hi - lo))
        ax.legend(loc="upper left", fontsize=7.5, ncols=2)
        style.panel_label(ax, "abc"[col])
        style.log_x(axl)
        axl.invert_xaxis()
        axl.set_xlabel(style.LABELS["loss"] + "  (decreasing →)")
        axl.set_ylabel(style.LABELS["sharpness"])
        axl.set_title(f"{TITLES[panel]}: sharpness against the loss")
        lo, hi = axl.get_ylim()
        axl.set_ylim(lo, hi + 0.3 * (hi - lo))
        axl.legend(loc="upper left", fontsize=7.5, ncols=2)
        style.panel_label(axl, "def"[col])
        axl.axvline(common, color="0.5", lw=0.8, ls=":")
        numbers[panel] = {"common_loss": common, "field": field, "eta": base.eta,
                          "steps": base.steps, "parametrization": base.parametrization,
                          "seeds": list(seed_list), "runs": rows, "order": order}
    path, rel = ctx.figure_path(NUMBER, NAME)
    style.save(fig, path)

    base_depth = specs["depth"][0]
    caption = (
        f"GD on MNIST-1D, varying one thing at a time around {describe_network(base_depth)} "
        f"(η = {base_depth.eta:g}), {len(seed_list)} seeds per setting (each seed draws its "
        f"own training set and initialisation). Top row: sharpness against steps, the median "
        f"over seeds with the band from the smallest to the largest; bottom row: every run "
        f"against its training loss, so that runs that fit at different speeds are compared "
        f"at equal loss. Width is varied in the NTK parametrization "
        f"(η = {specs['width'][0].eta:g}), where the initial sharpness does not depend on "
        f"the width; in the standard parametrization with a zero read-out the initial "
        f"sharpness grows in proportion to the width, which would confound the comparison.")

    def fmt(d: dict, f: str = ".2f") -> str:
        return f"{d['median']:{f}} [{d['min']:{f}}, {d['max']:{f}}]"

    parts = []
    for panel, (base, field, _) in specs.items():
        nb = numbers[panel]
        runs = nb["runs"]
        expected, more = EXPECTED[panel]
        listing = ", ".join(f"{LABELS[panel].format(r['value'])}: ×{fmt(r['growth'])} "
                            f"(×{fmt(r['growth_at_common_loss'])})" for r in runs)
        end = _trend([r["growth"]["median"] for r in runs])
        equal = _trend([r["growth_at_common_loss"]["median"] for r in runs])
        rise = _trend([r["rise"]["median"] for r in runs])
        reached = _trend([r["s_end"]["median"] for r in runs])
        start = _trend([r["s0"]["median"] for r in runs])
        o = nb["order"]
        if o["expected"] == 1.0:
            when = "in the order Cohen et al. observed at every tracked step"
        else:
            when = (f"in the order Cohen et al. observed ({more} sharpen "
                    f"{'more' if expected > 0 else 'less'}) at {o['expected']:.0%} of the "
                    f"tracked steps" + (f" (from the start until step {o['expected_until']})"
                                        if o["expected_until"] is not None else "")
                    + f" and in the opposite order at {o['reversed']:.0%}"
                    + (f" (from step {o['reversed_from']} to the end)"
                       if o["reversed_from"] is not None else ""))
        overlap = sum(a["s_end"]["max"] >= b["s_end"]["min"] and
                      b["s_end"]["max"] >= a["s_end"]["min"] for a, b in pairwise(runs))
        agree = "agrees" if reached == end else "does not agree"
        initial = ("" if start == 0 else
                   f" The initial sharpness itself {'rises' if start > 0 else 'falls'} with "
                   f"{field} (" + ", ".join(f"{r['value']}: {fmt(r['s0'])}" for r in runs)
                   + f"), so the ratio S(T)/S(0) mixes the start with the rise; the order of "
                   f"the sharpness reached {agree} with it here, and the seed ranges of S(T) "
                   f"of neighbouring settings overlap for {overlap} of {len(runs) - 1} pairs.")
        parts.append(
            f"**{TITLES[panel]}** ({base.steps} steps; loss reached by every run "
            f"{nb['common_loss']:.3f}): {listing}. As {field} grows the runs "
            f"{_TREND_TEXT[end]} by S(T)/S(0), {_TREND_TEXT[rise]} by S(T) − S(0) and "
            f"{_TREND_TEXT[equal]} at equal loss, and the sharpness reached S(T) "
            f"{_ORDER_TEXT[reached]} (" + ", ".join(f"{fmt(r['s_end'])}" for r in runs)
            + f"); the median S(t)/S(0) is {when}.{initial}")
    s0_width = [v for r in numbers["width"]["runs"] for v in (r["s0"]["min"], r["s0"]["max"])]
    parts.append(
        f"In the NTK panel the initial sharpness is {min(s0_width):.5f} to "
        f"{max(s0_width):.5f} for every width and seed: with a zero read-out the top "
        f"eigenvector lies on the read-out biases, whose Hessian block is the identity "
        f"(each bias adds 1 to its output on every example and the loss averages over the "
        f"examples), so S(0) measures the biases and not the width.")
    text = ("Measured, as median [smallest, largest] over seeds: the growth S(T)/S(0) of "
            "the sharpness over the run (T = last step) and, in brackets, its growth until "
            "the run first reached the training loss that every run of its panel reached "
            "(dotted in the bottom row). " + " ".join(parts))
    return Section(file=rel, caption=caption, text=text, numbers=numbers)
