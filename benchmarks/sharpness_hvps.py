"""Hessian-vector products and third derivatives: the torch forms side by side.

At a point of the default run of ``python -m validation.compare`` (GD step ``--step``)
times, on one thread, every way of computing ``H(w) v`` and ``grad_w (u^T H(w) u)`` with
torch, checks that they agree, and prints each time as a ratio to a plain gradient
measured in the same run:

- ``forward over reverse``: ``torch.func.jvp`` of ``torch.func.grad``, per product;
- ``double backward``: a gradient with ``create_graph`` and a reverse pass through it,
  both per product;
- ``torch.func.vjp``: the vjp of the gradient function, built once per point;
- ``kept graph``: :meth:`validation.objective.Objective.at`, a gradient with
  ``create_graph`` built once per point (it is also the step's gradient), then one
  reverse pass per product (what the library uses);

for three uses: many products at one point (a sharpness estimate), one product at a new
point, and the third derivative (three nested reverse passes from scratch, the same on the
kept graph, and reverse over forward over reverse with ``torch.func``).

    python -m benchmarks.sharpness_hvps [--step 300] [--repeats 30] [--calls 10]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch.func import grad, jvp, vjp

from validation.experiment import Config, Experiment


def best_times(forms: dict[str, Callable[[], object]], repeats: int, calls: int
               ) -> dict[str, float]:
    """Seconds per call of each form: the best of ``repeats`` rounds of ``calls`` calls.

    The forms take turns within each round, so that a change of the machine's load
    during the run reaches all of them alike.
    """
    best = dict.fromkeys(forms, float("inf"))
    for fn in forms.values():
        fn()
    for _ in range(repeats):
        for name, fn in forms.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / calls)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--step", type=int, default=300, help="GD step of the point (default 300)")
    p.add_argument("--repeats", type=int, default=30, help="timing rounds (default 30)")
    p.add_argument("--calls", type=int, default=10, help="calls per round (default 10)")
    args = p.parse_args()
    torch.set_num_threads(1)
    exp = Experiment(Config(checks=("edge",)), torch.device("cpu"))
    obj, w, eta = exp.objective, exp.w0.clone(), exp.config.eta
    for _ in range(args.step):
        w = w - eta * obj.grad(w)
    n = w.numel()
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(n, generator=gen, dtype=torch.float64).to(w.dtype)
    u = torch.randn(n, generator=gen, dtype=torch.float64).to(w.dtype)
    u = u / torch.linalg.vector_norm(u)

    def loss(q):
        return sum(obj._chunk_loss(q, xc, yc) for xc, yc in obj._chunks)

    def fresh_point():
        obj._last = None
        return obj.at(w)

    def forward_over_reverse():
        return jvp(grad(loss), (w,), (v,))[1]

    def double_backward():
        with torch.enable_grad():
            q = w.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(loss(q), q, create_graph=True)
            return torch.autograd.grad(g, q, v)[0]

    _, vjp_fn = vjp(grad(loss), w)

    def func_vjp_build():
        return vjp(grad(loss), w)

    def func_vjp_product():
        return vjp_fn(v)[0]

    point = fresh_point()

    def kept_product():
        return point.hvp(v)

    def kept_build_and_product():
        return fresh_point().hvp(v)

    def third_from_scratch():
        with torch.enable_grad():
            q = w.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(loss(q), q, create_graph=True)
            (hu,) = torch.autograd.grad(g, q, u, create_graph=True)
            return torch.autograd.grad(torch.dot(u, hu), q)[0]

    def third_kept():
        return point.third(u)

    def third_func():
        return grad(lambda q: torch.dot(u, jvp(grad(loss), (q,), (u,))[1]))(w)

    ref = kept_product()
    ref3 = third_kept()
    agree = {
        "forward over reverse": forward_over_reverse(),
        "double backward": double_backward(),
        "torch.func.vjp": func_vjp_product(),
    }
    agree3 = {"from scratch": third_from_scratch(), "torch.func": third_func()}

    t = best_times({
        "gradient": lambda: obj.value_and_grad(w),
        "fwd/rev": forward_over_reverse,
        "double": double_backward,
        "vjp build": func_vjp_build,
        "vjp product": func_vjp_product,
        "kept build": fresh_point,
        "kept product": kept_product,
        "kept build+1": kept_build_and_product,
        "third scratch": third_from_scratch,
        "third kept": third_kept,
        "third func": third_func,
    }, args.repeats, args.calls)
    g = t["gradient"]

    def row(label, seconds):
        print(f"  {label:66s} {seconds * 1e3:7.2f} ms  {seconds / g:5.2f} x gradient")

    print(f"default network of validation.compare ({n} parameters, {w.dtype}, "
          f"{exp.data.n} examples), GD step {args.step}; one thread; best of "
          f"{args.repeats} x {args.calls} calls")
    row("gradient alone (value_and_grad)", g)
    print("one Hessian-vector product, per product at a point already built:")
    row("forward over reverse (jvp of grad)", t["fwd/rev"])
    row("double backward (from scratch each product)", t["double"])
    row("torch.func.vjp of grad, product", t["vjp product"])
    row("kept graph (Objective.at), product", t["kept product"])
    print("building a point (gives the gradient too):")
    row("torch.func.vjp of grad, build", t["vjp build"])
    row("kept graph (Objective.at), build", t["kept build"])
    print("uses:")
    for m in (1, 4):
        row(f"{m} product(s) at a new point, forward over reverse", m * t["fwd/rev"])
        row(f"{m} product(s) at a new point, double backward", m * t["double"])
        row(f"{m} product(s) at a new point, torch.func.vjp", t["vjp build"]
            + m * t["vjp product"])
        row(f"{m} product(s) at a new point, kept graph", t["kept build"]
            + m * t["kept product"])
    row("1 product at a new point, kept graph, measured as one call", t["kept build+1"])
    row("third derivative grad(u^T H u), three reverse passes from scratch",
        t["third scratch"])
    row("third derivative, torch.func reverse over forward over reverse", t["third func"])
    row("third derivative on the kept graph (point already built)", t["third kept"])
    print("agreement with the kept graph (max |difference| / max |value|):")
    for name, out in agree.items():
        print(f"  H v, {name:24s} {float((out - ref).abs().max() / ref.abs().max()):.1e}")
    for name, out in agree3.items():
        print(f"  third, {name:22s} {float((out - ref3).abs().max() / ref3.abs().max()):.1e}")
    print("ratios:")
    for label, a, b in (("forward over reverse / kept graph, per product", "fwd/rev",
                         "kept product"),
                        ("double backward / kept graph, per product", "double", "kept product"),
                        ("torch.func.vjp / kept graph, per product", "vjp product",
                         "kept product"),
                        ("third from scratch / third on the kept graph", "third scratch",
                         "third kept")):
        print(f"  {label:66s} {t[a] / t[b]:5.2f}")

if __name__ == "__main__":
    main()
