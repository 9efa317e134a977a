"""Random well-formed programs over a fixed set of declarations: the checker
never fails internally (no E000, no exception), whatever the expression."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings, strategies as st

from mtdsl.lang import check_source

from .conftest import PRELUDE

EXTRA = """\
dim channel = range(3)
index q : channel
index k : range(2)
param w[n, l] ~ normal(0.0, 1.0)
param e0[a] ~ zeros
let radial_fn[p, n] = gto(P.distance[p], n, width = 0.5)
input h : tensormap
    keys       (o3_lambda, o3_sigma)
    samples    (system, atom)
    components (o3_mu)
    properties (q)
tensor rho
    keys       (o3_lambda = l, o3_sigma = 1, center_type = S.type[i], neighbor_type = b)
    samples    (i)
    components (o3_mu = m)
    properties (n)
  = sum(p in P.from(i) where S.type[P.second[p]] == b) radial_fn[p, n] * sph(P.vector[p], l, m)
"""

ATOMS = [
    "1.0", "2", "l", "n", "m", "L", "P.distance[p]", "norm(P.vector[p])", "sph(P.vector[p], l, m)",
    "sph(P.vector[p], l1, m1)", "sph(P.vector[p], L, M)", "cg(l1, m1, l2, m2, L, M)", "w[n, l]", "e0[S.type[i]]",
    "radial_fn[p, n]", "rho{o3_lambda = l, center_type = S.type[i], neighbor_type = b}[i, m, n]",
    "h{o3_lambda = l2, o3_sigma = 1}[P.second[p], m2, q]", "P.vector[p, x]", "S.positions[i, x]",
    "P.vector[p]", "S.type[i]", "(l1 + l2 + L) % 2", "w[q, l]", "rho[i, m, n]", "h{o3_lambda = l}[i, m]",
]
FUNCTIONS = ["tanh", "exp", "sqrt", "abs", "sigmoid"]
BINDERS = ["m", "n", "l", "l1, l2, m1, m2", "p in P.from(i)", "m1", "M", "x", "i in atoms(S)", "n where n > 0",
           "l1, m1 where (l1 + l2 + L) % 2 == 0", "z in range(3)"]
SIGNATURES = [
    "keys (o3_lambda = l, o3_sigma = 1)\n    samples (p)\n    components (o3_mu = m)",
    "keys (o3_lambda = L, o3_sigma = 1)\n    samples (i)\n    components (o3_mu = M)\n    properties (q)",
    "samples (i)\n    properties (n)",
    "keys (center_type = S.type[i])\n    samples (i)",
    "samples (p)\n    components (x)",
    "samples (s)\n    properties (energy = 0)",
    "keys (o3_lambda = l1, o3_sigma = -1, l2 = l2)\n    samples (p)\n    components (o3_mu = m1)\n    where l1 > 0",
]


def _extend(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "^", "%"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(FUNCTIONS), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(BINDERS), children).map(lambda t: f"(sum({t[0]}) {t[1]})"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} > 0 ? {t[1]} : {t[2]})"),
        children.map(lambda c: f"-{c}"),
    )


bodies = st.recursive(st.sampled_from(ATOMS), _extend, max_leaves=8)


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SIGNATURES), bodies, st.booleans())
def test_random_well_formed_tensors(signature, body, is_output):
    text = PRELUDE + EXTRA + f"\ntensor t\n    {signature}\n  = {body}\n" + ("output t\n" if is_output else "")
    diagnostics = check_source(text, "random.mt")
    lines = text.count("\n") + 1
    for diagnostic in diagnostics:
        assert diagnostic.code != "E000", f"{diagnostic}\n{text}"
        assert 1 <= diagnostic.line <= lines and diagnostic.col >= 1, diagnostic
