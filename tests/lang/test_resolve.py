"""Name resolution: E101-E105, `use`, hyper overrides, and the resolved Program."""

from __future__ import annotations

from mtdsl.lang import check, program as P, resolve

from .conftest import EXAMPLES, Checked

# ---- E101 -------------------------------------------------------------------------------------------


def test_e101_undefined_name_suggests_closest(program):
    result = program("\nlet y = n_radail * 2\n")
    diagnostic = result.at("E101", "n_radail")
    assert "n_radial" in diagnostic.hint


def test_e101_unknown_function(program):
    result = program("\nlet y = tanhh(1.0)\n")
    diagnostic = result.at("E101", "tanhh")
    assert "tanh" in diagnostic.hint


def test_e101_unknown_binder_index(program):
    result = program("\nlet y = sum(nn) 1.0\n")
    result.at("E101", "nn)")


def test_e101_unknown_field_of_pairs(program):
    result = program("\nlet y[p] = P.distanse[p]\n")
    diagnostic = result.at("E101", "distanse")
    assert "distance" in diagnostic.hint


def test_builtin_names_are_not_reserved(program):
    program("""
dim range_dim = range(3)
index species_index : species
let sph_weight[species_index] = 1.0
""").clean()


# ---- E102 -------------------------------------------------------------------------------------------


def test_e102_defined_twice_names_the_first(program):
    result = program("\nhyper cutoff = 5.0\nlet cutoff = 1.0\n")
    diagnostic = result.at("E102", "cutoff = 1.0")
    assert "hyper" in diagnostic.message and ":" in diagnostic.message
    line = result.text[:result.text.index("hyper cutoff")].count("\n") + 1
    assert f":{line}:" in diagnostic.message


def test_e102_index_declared_twice_in_one_statement(program):
    result = program("\nindex u, u : radial\n")
    result.at("E102", "u : radial")


def test_e102_sum_rebinds_a_signature_index(program):
    result = program("""
param w[n] ~ zeros
tensor t
    samples    (i)
    properties (n)
  = sum(n) w[n]
""")
    result.at("E102", "n) w")


def test_e102_across_used_files(program):
    result = program('use "lib.mt"\nhyper shared = 2\n', prelude=False, files={"lib.mt": "hyper shared = 1\n"})
    result.at("E102", "shared = 2")


# ---- E103 -------------------------------------------------------------------------------------------


def test_e103_unknown_override(tmp_path):
    path = tmp_path / "m.mt"
    path.write_text("hyper cutoff = 5.0\n")
    diagnostics = check(str(path), {"cutof": 4.0})
    assert [(d.code, d.line, d.col) for d in diagnostics] == [("E103", 1, 1)]
    assert "cutoff" in diagnostics[0].hint


def test_e103_ill_typed_override_points_at_the_hyper(tmp_path):
    path = tmp_path / "m.mt"
    path.write_text("hyper cutoff = 5.0\nhyper n = 6\n")
    diagnostics = check(str(path), {"n": 2.5, "cutoff": "abc"})
    assert sorted((d.code, d.line, d.col) for d in diagnostics) == [("E103", 1, 7), ("E103", 2, 7)]


def test_overrides_are_typed_and_reach_used_files():
    program, diagnostics = resolve(str(EXAMPLES / "soap_energy.mt"), {"cutoff": 4, "n_radial": "3"})
    assert diagnostics == []
    assert program.hypers["cutoff"].value == 4.0 and isinstance(program.hypers["cutoff"].value, float)
    assert program.hypers["n_radial"].value == 3 and program.hypers["n_radial"].overridden
    assert program.dims["radial"].size == 3


# ---- E104 / E105 -------------------------------------------------------------------------------------


def test_e104_unreadable_used_file(program):
    result = program('use "missing.mt"\n', prelude=False)
    diagnostic = result.at("E104", '"missing.mt"')
    assert "missing.mt" in diagnostic.message


def test_e104_unreadable_main_file(tmp_path):
    diagnostics = check(str(tmp_path / "nothere.mt"))
    assert [(d.code, d.line, d.col) for d in diagnostics] == [("E104", 1, 1)]


def test_e105_cycle_with_chain(program):
    result = program('use "b.mt"\n', name="a.mt", prelude=False, files={"b.mt": 'use "a.mt"\nhyper x = 1\n'})
    b = Checked(result.path.parent / "b.mt", 'use "a.mt"\nhyper x = 1\n')
    diagnostic = next(d for d in result.diagnostics if d.code == "E105")
    assert (diagnostic.file, diagnostic.line, diagnostic.col) == (str(b.path), 1, 5)
    assert "a.mt -> " in diagnostic.message and "b.mt -> " in diagnostic.message


def test_e105_file_using_itself(program):
    result = program('use "self.mt"\n', name="self.mt", prelude=False)
    result.at("E105", '"self.mt"')


def test_diamond_use_loads_once(program):
    files = {"base.mt": "hyper k = 1\n", "left.mt": 'use "base.mt"\n', "right.mt": 'use "base.mt"\n'}
    program('use "left.mt"\nuse "right.mt"\nlet y = k\n', prelude=False, files=files).clean()


def test_use_paths_are_relative_to_the_using_file(program):
    files = {"lib/a.mt": 'use "b.mt"\n', "lib/b.mt": "hyper deep = 3\n"}
    program('use "lib/a.mt"\nlet y = deep\n', prelude=False, files=files).clean()


def test_outputs_of_used_files_are_not_outputs():
    program, _ = resolve(str(EXAMPLES / "soap_energy.mt"))
    assert list(program.outputs) == ["energy"]
    assert program.outputs["energy"].gradients == ("positions", "strain")


# ---- the resolved program ------------------------------------------------------------------------------


def test_program_of_the_spherical_expansion():
    program, diagnostics = resolve(str(EXAMPLES / "spherical_expansion.mt"))
    assert diagnostics == []
    assert program.name == "spherical_expansion" and program.convention == "metatensor"
    assert program.hypers["n_radial"].value == 6 and program.hypers["n_radial"].type == "int"
    radial = program.dims["radial"]
    assert isinstance(radial, P.RangeDim) and (radial.start, radial.stop) == (0, 6)
    assert program.dims["species"] == P.SpeciesDim("S")
    m = program.indices["m"]
    assert isinstance(m.dim, P.IrrepDim) and m.dim.degree.index is program.indices["l"]
    rho = program.tensors["rho"]
    assert [entry.label for entry in rho.keys] == ["o3_lambda", "o3_sigma", "center_type", "neighbor_type"]
    assert rho.samples[0].labels == ("system", "atom") and rho.samples[0].dim == P.AtomsDim("S")
    assert rho.components[0].labels == ("o3_mu",) and rho.properties[0].dim is radial
    assert [index.name for index in rho.indices] == ["l", "b", "i", "m", "n"]
    # the sum over pairs plus featomic's central-atom term (center_atom_weight times a sum over j == i)
    assert isinstance(rho.body, P.Binary) and rho.body.op == "+"
    body, central = rho.body.left, rho.body.right
    assert isinstance(body, P.Sum) and isinstance(body.binders[0].domain, P.PairsFrom)
    assert body.binders[0].index.dim == P.PairsDim("P", "S")
    assert isinstance(central, P.Binary) and central.op == "*"
    assert central.left.hyper == "center_atom_weight" and central.left.value == 1.0
    assert isinstance(central.right, P.Sum) and central.right.binders[0].index.dim == P.AtomsDim("S")
    assert program.pairs["P"].systems == "S" and program.pairs["P"].full is True


def test_sum_binders_are_fresh_variables_with_dependent_dims():
    program, _ = resolve(str(EXAMPLES / "equivariant_convolution.mt"))
    inner = program.tensors["msg"].body.body
    assert isinstance(inner, P.Sum)
    by_name = {binder.index.name: binder.index for binder in inner.binders}
    assert by_name["l1"] is not program.indices["l1"] and by_name["l1"].origin is program.indices["l1"]
    assert by_name["m1"].dim == P.IrrepDim(P.IndexRef(by_name["l1"]))
    h = program.tensormaps["h"]
    assert h.keys == ("o3_lambda", "o3_sigma")
    assert h.samples[0].labels == ("system", "atom") and h.samples[0].dim == P.AtomsDim("S")
    assert h.components[0].dim == P.IrrepDim(P.KeyLabel("o3_lambda"))


def test_resolve_from_source_text():
    program, diagnostics = resolve("hyper a = [1, 6, 8]\nhyper b = -2.5\nhyper c = true\nhyper d = \"x\"\n",
                                   file="inline.mt")
    assert diagnostics == []
    assert [(h.type, h.value) for h in program.hypers.values()] == [
        ("list[int]", [1, 6, 8]), ("float", -2.5), ("bool", True), ("string", "x")]
    assert program.name == "inline"


def test_check_takes_a_path_even_without_the_mt_suffix(tmp_path):
    diagnostics = check(str(tmp_path / "missing_model"))
    assert [(d.code, d.line, d.col) for d in diagnostics] == [("E104", 1, 1)]
    path = tmp_path / "model.txt"
    path.write_text("hyper a = 1\n")
    assert check(str(path)) == [] and check(path) == []


def test_labels_are_unique_per_axis(program):
    program("""
tensor t
    samples    (i)
    properties (atom = n)
  = 1.0
""").clean()
    result = program("""
tensor u
    samples    (i)
    properties (n, n = n1)
  = 1.0
""", name="dup.mt")
    result.at("E102", "n = n1")
