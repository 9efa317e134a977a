"""E308 (a component label bound to an index of the wrong kind) at the component's line and column,
and expressions in diagnostics printed with their parentheses (the AST's `deparse()`)."""

from mtdsl.lang import check

HEADER = """model program
input S : systems
pairs P = neighbors(S, cutoff = 3.0)
index i : atoms(S)
index x, y : xyz
index m : irrep(1)
"""


def diagnostics(tmp_path, text):
    path = tmp_path / "program.mt"
    path.write_text(HEADER + text)
    return check(path)


def test_o3_mu_bound_to_a_cartesian_index_is_e308_at_the_component(tmp_path):
    found = diagnostics(tmp_path, """tensor d
    keys       (o3_lambda = 1, o3_sigma = 1)
    samples    (i)
    components (o3_mu = x)
  = sum(p in P.from(i)) P.vector[p, x]
""")
    assert [(d.code, d.line, d.col) for d in found] == [("E308", 10, 17)]
    assert "`o3_mu = x` binds an index of `xyz`" in found[0].message


def test_xyz_bound_to_an_irrep_index_is_e308(tmp_path):
    found = diagnostics(tmp_path, """tensor d
    samples    (i)
    components (xyz_1 = m, xyz_2 = y)
  = sum(p in P.from(i)) to_irrep(P.vector[p], m) * P.vector[p, y]
""")
    assert [(d.code, d.line, d.col) for d in found] == [("E308", 9, 17)]
    assert "`xyz_1 = m` binds an index of `irrep(1)`" in found[0].message


def test_cartesian_rank_two_and_irrep_components_are_clean(tmp_path):
    assert diagnostics(tmp_path, """tensor t
    samples    (i)
    components (xyz_1 = x, xyz_2 = y)
  = sum(p in P.from(i)) P.vector[p, x] * P.vector[p, y]
tensor d
    keys       (o3_lambda = 1, o3_sigma = -1)
    samples    (i)
    components (o3_mu = m)
  = sum(p in P.from(i)) to_irrep(cross(P.vector[p], S.positions[i]), m)
""") == []


def test_diagnostics_print_expressions_with_their_parentheses(tmp_path):
    path = tmp_path / "program.mt"
    path.write_text("""model program
hyper lmax = 2
input S : systems
pairs P = neighbors(S, cutoff = 3.0)
dim angular = range(lmax + 1)
index l1, l2 : angular
index m1 : irrep(l1)
index m2 : irrep(l2)
index p : P
tensor t
    keys       (o3_lambda = 0, o3_sigma = -(2 * ((l1 + l2 + 1) % 2) - 1), l1 = l1, l2 = l2)
    samples    (p)
    where l1 == l2
  = sum(m1, m2 where m1 == m2) sph(P.vector[p], l1, m1) * sph(P.vector[p], l2, m2)
""")
    messages = [d.message for d in check(path)]
    assert any("declared o3_sigma = -(2 * ((l1 + l2 + 1) % 2) - 1)" in m for m in messages), messages
