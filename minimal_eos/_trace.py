"""Optimizer update maps traced into straight-line source for the compiled steps.

The compiled steps (:func:`minimal_eos._kernels.make_generic_step` and the fused step of
:meth:`minimal_eos.symbolic.SymbolicLoss.source`) are not written by hand: each applies
an optimizer's own ``query`` and ``update`` (:mod:`minimal_eos.optimizers`) to
:class:`_Value` placeholders, which record every ``+``, ``-`` and ``*`` as one assignment.
The recorded source performs the same floating-point operations, in the same order, as the
update map on numpy arrays, so the kernels equal :func:`~minimal_eos.optimizers.reference_run`
bit for bit, and a change to a map changes its kernel.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import sympy as sp

from .optimizers import KERNEL_OPTIMIZERS


class _Tape:
    """The assignments recorded so far, and which leaves they read."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.lines: list[str] = []
        self.reads: set[str] = set()

    def emit(self, expr: str) -> _Value:
        name = f"{self.prefix}{len(self.lines)}"
        self.lines.append(f"{name} = {expr}")
        return _Value(name, self)


class _Value:
    """A scalar placeholder: arithmetic on it records one assignment on its tape."""

    __slots__ = ("name", "tape")

    def __init__(self, name: str, tape: _Tape):
        self.name = name
        self.tape = tape

    def _operand(self, other) -> str:
        if isinstance(other, _Value):
            self.tape.reads.add(other.name)
            return other.name
        if isinstance(other, int | float) and not isinstance(other, bool):
            return repr(float(other))
        raise TypeError(
            f"an update rule may combine the state only with numbers and beta; got {other!r}"
        )

    def _binary(self, other, op: str, swap: bool = False) -> _Value:
        a, b = self._operand(self), self._operand(other)
        return self.tape.emit(f"{b} {op} {a}" if swap else f"{a} {op} {b}")

    def __add__(self, other):
        return self._binary(other, "+")

    def __radd__(self, other):
        return self._binary(other, "+", swap=True)

    def __sub__(self, other):
        return self._binary(other, "-")

    def __rsub__(self, other):
        return self._binary(other, "-", swap=True)

    def __mul__(self, other):
        return self._binary(other, "*")

    def __rmul__(self, other):
        return self._binary(other, "*", swap=True)

    def __neg__(self):
        return self.tape.emit(f"-{self._operand(self)}")


class TracedRule(NamedTuple):
    """One coordinate of an optimizer step as source lines.

    ``query`` computes the point ``query_out`` at which the gradient is taken from the
    position ``s<k>`` and velocity ``w<k>``; ``update`` computes the new position ``x_out``
    and velocity ``v_out`` from ``s<k>``, ``w<k>``, the gradient ``g<k>`` and the step size
    ``eb``. ``reads_v`` says whether the velocity is read, ``writes_v`` whether it changes.
    """

    code: int
    query: list[str]
    query_out: str
    update: list[str]
    x_out: str
    v_out: str
    reads_v: bool
    writes_v: bool


def _on_tape(cls, tape: _Tape):
    """An instance of the optimizer class ``cls`` whose momentum is the placeholder ``beta``.

    The kernels take ``beta`` as an argument, so one kernel serves every value of it; as a
    placeholder, every operation of the rule on it is recorded too, in order. The instance
    is validated with a sympy symbol first, then given the placeholder.
    """
    if "beta" not in {f.name for f in dataclasses.fields(cls)}:
        return cls()
    opt = cls(beta=sp.Symbol("beta"))
    object.__setattr__(opt, "beta", _Value("beta", tape))
    return opt


def trace_rule(cls, k: int | str = "") -> TracedRule:
    """Trace coordinate ``k`` of the update map of the optimizer class ``cls``."""
    s, w, g = f"s{k}", f"w{k}", f"g{k}"
    query_tape = _Tape(f"_q{k}_")
    q = _on_tape(cls, query_tape).query((_Value(s, query_tape), _Value(w, query_tape)))
    update_tape = _Tape(f"_u{k}_")
    x_new, v_new = _on_tape(cls, update_tape).update(
        (_Value(s, update_tape), _Value(w, update_tape)),
        _Value(g, update_tape),
        _Value("eb", update_tape),
    )
    reads_v = w in query_tape.reads or w in update_tape.reads or q.name == w
    return TracedRule(
        code=cls.code,
        query=query_tape.lines,
        query_out=q.name,
        update=update_tape.lines,
        x_out=x_new.name,
        v_out=v_new.name,
        reads_v=reads_v or x_new.name == w,
        writes_v=v_new.name != w,
    )


def traced_rules(k: int | str = "") -> list[TracedRule]:
    """:func:`trace_rule` of every optimizer of :mod:`minimal_eos.optimizers`, by code."""
    return sorted((trace_rule(cls, k) for cls in KERNEL_OPTIMIZERS.values()), key=lambda r: r.code)
