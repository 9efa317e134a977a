"""E201-E205: dimensions and metadata (LANGUAGE.md §4), each with its position."""

from __future__ import annotations

from mtdsl.lang import check, params_needing_species, resolve

from .conftest import EXAMPLES

RHO = """
tensor rho
    keys       (o3_lambda = l, o3_sigma = 1, center_type = S.type[i], neighbor_type = b)
    samples    (i)
    components (o3_mu = m)
    properties (n)
  = sum(p in P.from(i) where S.type[P.second[p]] == b) gto(P.distance[p], n, width = 0.5) * sph(P.vector[p], l, m)
"""


def test_reference_rho_shape_is_clean(program):
    program(RHO).clean()


# ---- E201 ----------------------------------------------------------------------------------------


def test_e201_channel_index_in_radial_slot(program):
    result = program("""
index q : range(8)
param w[n] ~ zeros
let y = w[q]
""")
    diagnostic = result.at("E201", "q]")
    assert "radial" in diagnostic.message and "range(8)" in diagnostic.message


def test_e201_atom_index_in_pair_slot(program):
    result = program("""
tensor d
    samples (i)
  = P.distance[i]
""")
    diagnostic = result.at("E201", "i]")
    assert "atoms(S)" in diagnostic.message and "P" in diagnostic.message


def test_e201_two_range_dims_of_same_size_are_different_types(program):
    result = program("""
dim other = range(n_radial)
index o : other
param w[n] ~ zeros
let y[o] = w[o]
""")
    result.at("E201", "o]", 2)


def test_e201_atoms_index_cannot_label_properties(program):
    result = program("""
tensor t
    samples    (s)
    properties (i)
  = 1.0
""")
    result.at("E201", "i)")


def test_e201_sph_with_m_of_another_degree(program):
    result = program("""
tensor t
    keys       (o3_lambda = l1)
    samples    (p)
    components (o3_mu = m1)
  = sph(P.vector[p], l1, m2)
""")
    result.at("E201", "m2)")


# ---- E202 ------------------------------------------------------------------------------------------


def test_e202_free_index_in_tensor_body(program):
    result = program("""
param w[n] ~ zeros
tensor t
    samples (i)
  = w[n]
""")
    diagnostic = result.at("E202", "  = w[n]", offset=6)
    assert "`n`" in diagnostic.message


def test_e202_free_index_in_let_body(program):
    result = program("""
param w[n, l] ~ zeros
let y[n] = w[n, l]
""")
    result.at("E202", "l]", 2)


def test_e202_dependent_dim_needs_its_degree(program):
    result = program("""
tensor t
    samples    (p)
    components (o3_mu = m)
  = sph(P.vector[p], l, m)
""")
    diagnostic = result.at("E202", "o3_mu = m")
    assert "`l`" in diagnostic.message


# ---- E203 ------------------------------------------------------------------------------------------


def test_e203_wrong_number_of_param_indices(program):
    result = program("""
param w[n, l] ~ zeros
let y[n] = w[n]
""")
    diagnostic = result.at("E203", "w[n]")
    assert "2 indices" in diagnostic.message


def test_e203_block_access_must_bind_multi_valued_key(program):
    result = program(RHO + """
tensor t
    keys    (center_type = S.type[i])
    samples (i)
  = sum(m) rho{o3_lambda = 0, center_type = S.type[i]}[i, m, 0] * rho{o3_lambda = 0, center_type = S.type[i]}[i, m, 0]
""")
    diagnostic = result.at("E203", "rho{o3_lambda = 0, center_type")
    assert "neighbor_type" in diagnostic.message


def test_e203_wrong_number_of_block_indices(program):
    result = program(RHO + """
tensor t
    keys    (o3_lambda = l, center_type = S.type[i], neighbor_type = b)
    samples (i)
    components (o3_mu = m)
  = rho{o3_lambda = l, center_type = S.type[i], neighbor_type = b}[i, m]
""")
    result.at("E203", "rho{o3_lambda = l, center_type = S.type[i], neighbor_type = b}[i, m]")


def test_e203_tensormap_input_needs_all_keys(program):
    result = program("""
input h : tensormap
    keys       (o3_lambda, o3_sigma)
    samples    (system, atom)
    components (o3_mu)
    properties (q)
tensor t
    samples (i)
  = h{o3_lambda = 0}[i, 0, 0]
""")
    result.at("E203", "h{o3_lambda = 0}")


# ---- E204 ------------------------------------------------------------------------------------------


def test_e204_key_uses_index_outside_the_signature(program):
    result = program("""
tensor t
    keys       (center_type = S.type[i])
    samples    (s)
  = 1.0
""")
    diagnostic = result.at("E204", "i])")
    assert "center_type" in diagnostic.message


def test_e204_key_expression_with_unbound_index(program):
    result = program("""
tensor t
    keys       (parity = (l1 + l2) % 2)
    samples    (i)
    properties (l1)
  = 1.0
""")
    result.at("E204", "l2) % 2")


# ---- E205 ------------------------------------------------------------------------------------------

TENSORMAP = """
input h : tensormap
    keys       (o3_lambda, o3_sigma)
    samples    (system, atom)
    components (o3_mu)
    properties (q)
"""


def test_e205_undeclared_key_label(program):
    result = program(TENSORMAP + """
tensor t
    samples (i)
  = h{o3_lambda = 0, o3_sigma = 1, species = 8}[i, 0, 0]
""")
    diagnostic = result.at("E205", "species = 8")
    assert "o3_lambda" in diagnostic.hint


def test_e205_misspelled_key_label_is_suggested(program):
    result = program(TENSORMAP + """
tensor t
    samples (i)
  = h{o3_lambda = 0, o3_sgma = 1}[i, 0, 0]
""")
    diagnostic = result.at("E205", "o3_sgma")
    assert "o3_sigma" in diagnostic.hint


def test_tensormap_input_read_correctly_is_clean(program):
    program(TENSORMAP + """
dim channel = range(4)
index q : channel
tensor t
    keys       (o3_lambda = l, o3_sigma = 1)
    samples    (i)
    components (o3_mu = m)
    properties (q)
  = h{o3_lambda = l, o3_sigma = 1}[i, m, q]
""").clean()


# ---- E206 belongs to compile -------------------------------------------------------------------------


def test_e206_is_not_raised_by_check_but_the_helper_finds_the_params():
    assert check(str(EXAMPLES / "soap_energy.mt")) == []
    program, diagnostics = resolve(str(EXAMPLES / "soap_energy.mt"))
    assert diagnostics == []
    found = {param.name: index.name for param, index in params_needing_species(program)}
    assert found == {"w": "a", "e0": "a"}


def test_key_pinned_by_where_need_not_be_bound(program):
    program(RHO + """
tensor scalar
    keys       (o3_lambda = l, center_type = S.type[i], neighbor_type = b)
    samples    (i)
    properties (n)
    where l == 0
  = 1.0

tensor t
    keys    (center_type = S.type[i], neighbor_type = b)
    samples (i)
    properties (n)
  = scalar{center_type = S.type[i], neighbor_type = b}[i, n]
""").clean()


def test_list_hyper_items(program):
    result = program("""
hyper widths = [0.3, 0.5]
index k : range(2)
index k3 : range(3)
let g[p, k] = gto(P.distance[p], 2, width = widths[k])
let bad[p, k3] = gto(P.distance[p], 2, width = widths[k3])
""")
    diagnostic = result.at("E201", "k3])")
    assert "2 items" in diagnostic.message
    assert result.codes == ["E201"]


def test_constant_component_of_an_invariant_block(program):
    body = "rho{o3_lambda = 0, center_type = S.type[i], neighbor_type = b}[i, 0, n]"
    program(RHO + f"""
tensor gate
    keys       (center_type = S.type[i], neighbor_type = b)
    samples    (i)
    properties (n)
  = sigmoid({body})
""").clean()
    result = program(RHO + """
tensor pick
    keys       (center_type = S.type[i], neighbor_type = b)
    samples    (i)
    properties (n)
  = rho{o3_lambda = 1, center_type = S.type[i], neighbor_type = b}[i, 0, n]
""", name="pick.mt")
    result.at("E201", "0, n]")


def test_cell_vectors_and_their_cartesian_components(program):
    program("""
index c : range(3)
tensor volume_like
    samples (s)
  = sum(c, x) S.cell[s, c, x] * S.cell[s, c, x]
tensor cell_vectors
    samples    (s)
    components (x)
    properties (c)
  = S.cell[s, c, x]
""").clean()
