"""E301-E307 and W401: irreps and parity tracked through expressions."""

from __future__ import annotations

import pytest

from mtdsl.lang.irreps import Irrep, Irreps, cg_sigma, triangle

SPH = "sph(P.vector[p], l, m)"


def tensor(body: str, keys: str = "(o3_lambda = l, o3_sigma = 1)", components: str = "(o3_mu = m)",
           samples: str = "(p)", where: str = "") -> str:
    where_line = f"    where {where}\n" if where else ""
    return (f"\ntensor t\n    keys       {keys}\n    samples    {samples}\n    components {components}\n"
            f"{where_line}  = {body}\n")


def test_spherical_harmonics_tensor_is_clean(program):
    program(tensor(SPH)).clean()


# ---- E301 -------------------------------------------------------------------------------------------


def test_e301_invariant_bias_added_to_irrep(program):
    result = program(tensor(f"{SPH} + 1.0"))
    diagnostic = result.at("E301", "+ 1.0")
    assert "irrep(l)" in diagnostic.hint and "invariant" in diagnostic.hint


def test_e301_subtracting_different_components(program):
    result = program(tensor("sph(P.vector[p], l1, m1) - sph(P.vector[p], l, m)",
                            keys="(o3_lambda = l, o3_sigma = 1, l1 = l1)", components="(o3_mu = m, m1 = m1)"))
    result.at("E301", "- sph")


def test_e301_not_raised_when_l_restricted_to_zero(program):
    program(tensor(f"{SPH} + 1.0", where="l == 0")).clean()


def test_e301_adding_pseudoscalar_to_scalar(program):
    result = program(tensor("(sum(m1, m2) cg(l1, m1, l2, m2, L, M) * sph(P.vector[p], l1, m1) "
                            "* sph(P.vector[p], l2, m2)) + 1.0",
                            keys="(o3_lambda = L, o3_sigma = 1, l1 = l1, l2 = l2)", components="(o3_mu = M)",
                            where="L == 0 and l1 == 1 and l2 == 1"))
    # (1 x 1 -> 0) has o3_sigma (-1)^(1+1+0) = 1: fine; the parity clash needs l1 + l2 + L odd
    result.clean()
    result = program(tensor("(sum(m1, m2) cg(l1, m1, l2, m2, L, M) * sph(P.vector[p], l1, m1) "
                            "* sph(P.vector[p], l2, m2)) + sph(P.vector[p], L, M)",
                            keys="(o3_lambda = L, o3_sigma = 1, l1 = l1, l2 = l2)", components="(o3_mu = M)",
                            where="L == 1 and l1 == 1 and l2 == 1"), name="odd.mt")
    diagnostic = result.at("E301", "+ sph(P.vector[p], L, M)")
    assert "parity" in diagnostic.message


# ---- E302 -------------------------------------------------------------------------------------------


def test_e302_tanh_of_irrep(program):
    result = program(tensor(f"tanh({SPH})"))
    diagnostic = result.at("E302", "tanh")
    assert "tanh" in diagnostic.message


def test_e302_exp_of_vector_component(program):
    result = program("""
tensor t
    samples    (p)
    components (x)
  = exp(P.vector[p, x])
""")
    result.at("E302", "exp")


def test_e302_division_by_non_invariant(program):
    result = program(tensor(f"1.0 / {SPH}"))
    result.at("E302", "/ sph")


def test_e302_not_raised_for_invariants(program):
    program("""
tensor t
    samples    (p)
  = tanh(norm(P.vector[p])) * exp(-P.distance[p]) / sqrt(2.0)
""").clean()


# ---- E303 -------------------------------------------------------------------------------------------


def test_e303_sum_over_single_component(program):
    result = program(tensor(f"sum(m) {SPH}", keys="(o3_lambda = l)", components="()"))
    result.at("E303", "m) sph")


def test_e303_sum_over_component_only_in_cg(program):
    result = program(tensor("sum(m1, m2) cg(l1, m1, l2, m2, L, M) * sph(P.vector[p], l1, m1)",
                            keys="(o3_lambda = L, o3_sigma = 1, l1 = l1, l2 = l2)", components="(o3_mu = M)"))
    result.at("E303", "m2) cg")


def test_contraction_is_invariant(program):
    program(tensor(f"sum(m) {SPH} * {SPH}", keys="(o3_lambda = l)", components="()")).clean()


# ---- E304 -------------------------------------------------------------------------------------------


def test_e304_element_wise_product_of_components(program):
    result = program(tensor(f"{SPH} * {SPH}"))
    result.at("E304", "* sph")


def test_e304_three_occurrences(program):
    result = program(tensor(f"sum(m) {SPH} * {SPH} * {SPH}", keys="(o3_lambda = l)", components="()"))
    result.at("E304", "* sph", 2)


# ---- E305 -------------------------------------------------------------------------------------------


def test_e305_param_indexed_by_irrep_component(program):
    result = program("\nparam w[n, m] ~ zeros\n")
    result.at("E305", "m] ~")


def test_e305_param_indexed_by_cartesian_component(program):
    result = program("\nparam w[x, n] ~ normal(0.0, 0.1)\n")
    diagnostic = result.at("E305", "x, n] ~")
    assert "xyz" in diagnostic.message


# ---- E306 -------------------------------------------------------------------------------------------


def test_e306_declared_odd_sigma(program):
    result = program(tensor(SPH, keys="(o3_lambda = l, o3_sigma = -1)"))
    result.at("E306", "o3_sigma = -1")


def test_e306_declared_component_that_the_value_ignores(program):
    result = program(tensor("P.distance[p]"))
    diagnostic = result.at("E306", "o3_mu = m")
    assert "invariant" in diagnostic.message


def test_e306_parity_of_cg_coupling_without_filter(program):
    result = program(tensor("sum(l1, l2, m1, m2) cg(l1, m1, l2, m2, L, M) * sph(P.vector[p], l1, m1) "
                            "* sph(P.vector[p], l2, m2)", keys="(o3_lambda = L, o3_sigma = 1)",
                            components="(o3_mu = M)"))
    result.at("E306", "o3_sigma = 1")


def test_e306_parity_filter_in_where_makes_it_clean(program):
    program(tensor("sum(l1, l2, m1, m2 where (l1 + l2 + L) % 2 == 1) cg(l1, m1, l2, m2, L, M) "
                   "* sph(P.vector[p], l1, m1) * sph(P.vector[p], l2, m2)", keys="(o3_lambda = L, o3_sigma = -1)",
                   components="(o3_mu = M)", where="L > 0")).clean()


# ---- E307 -------------------------------------------------------------------------------------------


def test_e307_m_index_of_the_wrong_irrep(program):
    result = program(tensor("sum(m1, m2) cg(l1, m2, l2, m1, L, M) * sph(P.vector[p], l1, m1) "
                            "* sph(P.vector[p], l2, m2)", keys="(o3_lambda = L, o3_sigma = 1, l1 = l1, l2 = l2)",
                            components="(o3_mu = M)", where="(l1 + l2 + L) % 2 == 0"))
    result.at("E307", "m2, l2")
    result.at("E307", "m1, L")


def test_e307_triangle_rule_never_satisfied(program):
    result = program(tensor("sum(m1, m2) cg(l1, m1, l2, m2, L, M) * sph(P.vector[p], l1, m1) "
                            "* sph(P.vector[p], l2, m2)", keys="(o3_lambda = L, o3_sigma = 1, l1 = l1, l2 = l2)",
                            components="(o3_mu = M)", where="l1 == 0 and l2 == 0 and L == 2"))
    diagnostic = result.at("E307", "cg(")
    assert "triangle" in diagnostic.message


# ---- W401 ---------------------------------------------------------------------------------------------


def test_w401_key_value_without_contribution(program):
    text = tensor("sum(l1, l2, m1, m2 where (l1 + l2 + L) % 2 == 1) cg(l1, m1, l2, m2, L, M) "
                  "* sph(P.vector[p], l1, m1) * sph(P.vector[p], l2, m2)", keys="(o3_lambda = L, o3_sigma = -1)",
                  components="(o3_mu = M)") + "\noutput t\n"
    result = program(text)
    diagnostic = result.at("W401", "o3_lambda = L")
    assert diagnostic.severity == "warning" and "= 0" in diagnostic.message
    assert [d.code for d in result.diagnostics] == ["W401"]


def test_w401_triangle_limits_output_degrees(program):
    text = tensor("sum(m1, m2) cg(l1, m1, l2, m2, L, M) * sph(P.vector[p], l1, m1) * sph(P.vector[p], l2, m2)",
                  keys="(o3_lambda = L, o3_sigma = 1, l1 = l1, l2 = l2)", components="(o3_mu = M)",
                  where="l1 <= 1 and l2 <= 0 and (l1 + l2 + L) % 2 == 0") + "\noutput t\n"
    result = program(text)
    diagnostic = result.at("W401", "o3_lambda = L")
    assert "o3_lambda = 2" in diagnostic.message


def test_w401_only_for_outputs(program):
    text = tensor("sum(l1, l2, m1, m2 where (l1 + l2 + L) % 2 == 1) cg(l1, m1, l2, m2, L, M) "
                  "* sph(P.vector[p], l1, m1) * sph(P.vector[p], l2, m2)", keys="(o3_lambda = L, o3_sigma = -1)",
                  components="(o3_mu = M)")
    program(text).clean()


# ---- the irreps value type ----------------------------------------------------------------------------


def test_irrep_parse_print_and_sigma():
    assert str(Irrep.parse("1o")) == "1o"
    assert Irrep.from_sigma(1, 1) == Irrep(1, -1)
    assert Irrep(2, 1).sigma == 1 and Irrep(1, 1).sigma == -1
    assert Irrep(1, -1) * Irrep(1, -1) == [Irrep(0, 1), Irrep(1, 1), Irrep(2, 1)]
    assert Irrep(1, -1).couples_to(Irrep(2, 1), Irrep(3, -1))
    with pytest.raises(ValueError):
        Irrep.parse("x")


def test_irreps_round_trip_and_rules():
    irreps = Irreps("2x0e + 1x1o")
    assert str(irreps) == "2x0e + 1x1o" and irreps.dim == 5
    assert str(Irreps("0e + 0e").simplify()) == "2x0e"
    assert triangle(1, 1, 2) and not triangle(0, 0, 2)
    assert cg_sigma(1, 1, 1) == -1 and cg_sigma(1, 1, 2) == 1


def test_remembered_answers_depend_on_the_conditions(program):
    body = ("sum(l1, l2, m1, m2{where}) cg(l1, m1, l2, m2, L, M) * sph(P.vector[p], l1, m1) "
            "* sph(P.vector[p], l2, m2)")
    text = ""
    for name, where in (("t1", " where (l1 + l2 + L) % 2 == 0"), ("t2", ""), ("t3", " where (l1 + l2 + L) % 2 == 0")):
        text += tensor(body.format(where=where), keys="(o3_lambda = L, o3_sigma = 1)",
                       components="(o3_mu = M)").replace("tensor t", f"tensor {name}")
    first = program(text)
    assert first.codes == ["E306"]
    first.at("E306", "o3_sigma = 1", 2)
    again = program(text, name="again.mt")
    assert [(d.code, d.line, d.col) for d in again.diagnostics] == [
        (d.code, d.line, d.col) for d in first.diagnostics]
