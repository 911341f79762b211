"""How ``stability_threshold`` picks its root, on maps whose answer is known in closed form.

Scalar maps ``x+ = lambda(a) x`` are stable iff ``|lambda(a)| < 1``, so their threshold is
the first ``a > 0`` where ``|lambda|`` crosses 1 from below, found here by hand from the
quadratic ``lambda(a)``; the two-branch map ``diag(1 - a eta, 1 - a c)`` loses stability
at ``min(2/eta, 2/c)``.
"""

import numpy as np
import pytest
import sympy as sp

from minimal_eos.thresholds import (
    a_sym,
    derive_all,
    eta_sym,
    known_thresholds,
    schur_cohn_conditions,
    spectral_radius,
    stability_threshold,
)

c_sym = sp.Symbol("c", real=True)
TWO_BRANCHES = sp.diag(1 - a_sym * eta_sym, 1 - a_sym * c_sym)


def _crosses_one_at(m, a_star):
    """The spectral radius is below 1 just left of ``a_star`` and above it just right."""
    return (spectral_radius(m, {a_sym: a_star * (1 - 1e-7)}) < 1
            and spectral_radius(m, {a_sym: a_star * (1 + 1e-7)}) > 1)


def test_a_root_where_the_map_only_touches_the_unit_circle_is_skipped():
    """lambda = -1 + (a - 1)^2 touches -1 at a = 1 (stable on both sides) and crosses 1 at
    a = 1 + sqrt(2): the threshold is the crossing, not the first root."""
    m = sp.Matrix([[-1 + (a_sym - 1) ** 2]])
    thr = stability_threshold(matrix=m)
    assert sp.simplify(thr.expr - (1 + sp.sqrt(2))) == 0
    assert _crosses_one_at(m, 1 + np.sqrt(2))


def test_a_short_window_of_instability_is_the_threshold():
    """lambda = -51/50 + 3/10 (a - 5/2)^2 < -1 only on 5/2 -+ sqrt(1/15), a window of width
    0.52, then stable again up to a = 5/2 + sqrt(101/15): the threshold is the window's left
    end, though the map is stable at twice that value and one unit past it."""
    m = sp.Matrix([[sp.Rational(-51, 50) + sp.Rational(3, 10) * (a_sym - sp.Rational(5, 2)) ** 2]])
    thr = stability_threshold(matrix=m)
    left = 2.5 - np.sqrt(1 / 15)
    assert float(thr.expr) == pytest.approx(left, rel=1e-12)
    assert _crosses_one_at(m, left)
    assert spectral_radius(m, {a_sym: 2 * left}) < 1 and spectral_radius(m, {a_sym: left + 1}) < 1


def test_a_threshold_far_below_one():
    """Step sizes in the thousands: the threshold 2/eta is of order 1e-4."""
    thr = stability_threshold(matrix=sp.Matrix([[1 - a_sym * eta_sym]]),
                              ranges={"eta": (1e4, 2e4)})
    assert sp.simplify(thr.expr - 2 / eta_sym) == 0


def test_floats_in_the_matrix_become_exact_rationals():
    """1.4142135623731 is taken as the rational it is written as, not recognised as sqrt 2."""
    thr = stability_threshold(matrix=sp.Matrix([[1 - 1.4142135623731 * a_sym]]))
    assert thr.expr == sp.Rational(2 * 10**13, 14142135623731)


def test_default_ranges_of_eta_and_of_other_parameters():
    """eta ranges over (0.05, 3) and any other parameter over (0.1, 1) unless given."""
    # c in (1.5, 2): eta < c and eta > c both occur in eta's default range
    with pytest.raises(ValueError, match="not one expression"):
        stability_threshold(matrix=TWO_BRANCHES, ranges={"c": (1.5, 2.0)})
    # eta in (1.2, 1.5) is above every c of the default (0.1, 1): 2/eta throughout
    thr = stability_threshold(matrix=TWO_BRANCHES, ranges={"eta": (1.2, 1.5)})
    assert sp.simplify(thr.expr - 2 / eta_sym) == 0


def test_derive_all_reproduces_every_closed_form():
    known = known_thresholds()
    derived = derive_all(tuple(known))
    for name, expr in known.items():
        assert sp.simplify(derived[name].expr - expr) == 0, name


def test_schur_cohn_gives_one_condition_per_degree():
    """(z - 1/2)(z + 3/10)(z - 1/5): every root inside the unit circle, so the three
    conditions D_3, D_2, D_1 are all positive (numpy's roots are the independent check)."""
    z = sp.Symbol("z")
    poly = sp.Poly(sp.expand((z - sp.Rational(1, 2)) * (z + sp.Rational(3, 10))
                             * (z - sp.Rational(1, 5))), z)
    conds = schur_cohn_conditions(poly)
    assert len(conds) == 3 and all(float(c) > 0 for c in conds)
    coeffs = [float(c) for c in poly.all_coeffs()]
    assert np.max(np.abs(np.roots(coeffs))) < 1
