"""Hand-built IR modules: the reference programs of LANGUAGE.md §5 (as `mtdsl.ir.lower`
produces them) and small programs that exercise other corners of the IR.

Built by hand so that the backend tests do not depend on the front end.
"""

from __future__ import annotations

import numpy as np

from mtdsl.ir import nodes as ir
from mtdsl.tensor import Labels, TensorBlock, TensorMap

V = ir.Var
C = ir.Const


def mul(*factors):
    result = factors[0]
    for factor in factors[1:]:
        result = ir.Binary("mul", result, factor)
    return result


def atoms_entry(var="i"):
    return ir.Entry("i", "atoms", V(var), "S")


def rho_kernel(n_radial=6, max_angular=4, cutoff=5.0, width=0.3, species=None, name="rho"):
    distance = ir.Data("P", "distance", (V("p"),))
    body = ir.Reduce(
        (ir.Binder("p", ir.PairsFrom("P", V("i"))),),
        mul(ir.Call("soap_radial", (distance, V("n"), V("l")),
                    (("n_radial", n_radial), ("cutoff", cutoff), ("density_width", width))),
            ir.Call("cosine_cutoff", (distance,), (("cutoff", cutoff), ("width", 0.5))),
            ir.Call("sph", (ir.Data("P", "vector", (V("p"),)), V("l"), V("m")))),
        ir.Binary("eq", ir.Data("S", "type", (ir.Data("P", "second", (V("p"),)),)), V("b")),
    )
    return ir.TensorKernel(
        name,
        (ir.Binder("l", ir.RangeDomain("angular", 0, max_angular + 1)),
         ir.Binder("b", ir.SpeciesDomain("S", species)),
         ir.Binder("i", ir.AtomsDomain("S")),
         ir.Binder("m", ir.IrrepDomain(V("l"), max_angular)),
         ir.Binder("n", ir.RangeDomain("radial", 0, n_radial))),
        keys=(ir.Entry("o3_lambda", "value", V("l")), ir.Entry("o3_sigma", "value", C(1)),
              ir.Entry("center_type", "value", ir.Data("S", "type", (V("i"),))),
              ir.Entry("neighbor_type", "value", V("b"))),
        samples=(atoms_entry(),),
        components=(ir.Entry("o3_mu", "value", V("m")),),
        properties=(ir.Entry("n", "value", V("n")),),
        body=body,
    )


def ps_kernel(n_radial=6, max_angular=4, species=None, rho="rho"):
    def access(b, n):
        return ir.BlockRef(rho, (("o3_lambda", V("l")), ("center_type", ir.Data("S", "type", (V("i"),))),
                                 ("neighbor_type", V(b))),
                           (ir.Slot("atoms", V("i"), "S"),), (ir.Slot("value", V("m")),), (ir.Slot("value", V(n)),))

    factor = ir.Binary("div", mul(
        ir.Select(ir.Binary("eq", V("b1"), V("b2")), C(1.0), ir.Call("sqrt", (C(2.0),))),
        ir.Binary("pow", C(-1.0), V("l"))),
        ir.Call("sqrt", (ir.Binary("add", ir.Binary("mul", C(2.0), V("l")), C(1.0)),)))
    body = mul(factor, ir.Reduce((ir.Binder("m", ir.IrrepDomain(V("l"), max_angular)),),
                                 mul(access("b1", "n1"), access("b2", "n2"))))
    return ir.TensorKernel(
        "ps",
        (ir.Binder("b1", ir.SpeciesDomain("S", species)), ir.Binder("b2", ir.SpeciesDomain("S", species)),
         ir.Binder("i", ir.AtomsDomain("S")), ir.Binder("l", ir.RangeDomain("angular", 0, max_angular + 1)),
         ir.Binder("n1", ir.RangeDomain("radial", 0, n_radial)), ir.Binder("n2", ir.RangeDomain("radial", 0, n_radial))),
        keys=(ir.Entry("center_type", "value", ir.Data("S", "type", (V("i"),))),
              ir.Entry("neighbor_1_type", "value", V("b1")), ir.Entry("neighbor_2_type", "value", V("b2"))),
        samples=(atoms_entry(),),
        components=(),
        properties=(ir.Entry("l", "value", V("l")), ir.Entry("n_1", "value", V("n1")), ir.Entry("n_2", "value", V("n2"))),
        body=body,
        where=ir.Binary("le", V("b1"), V("b2")),
    )


def _base(name, kernels, outputs, params=(), tensormaps=(), cutoff=5.0, convention="metatensor"):
    return ir.Module(name, (ir.SystemsInput("S"),), tuple(tensormaps), (ir.PairsDecl("P", "S", cutoff),),
                     tuple(params), tuple(kernels), tuple(ir.Output(o) for o in outputs), convention)


def spherical_expansion(**hypers) -> ir.Module:
    return _base("spherical_expansion", [rho_kernel(**hypers)], ["rho"], cutoff=hypers.get("cutoff", 5.0))


def power_spectrum(n_radial=6, max_angular=4, cutoff=5.0, width=0.3) -> ir.Module:
    return _base("soap_power_spectrum",
                 [rho_kernel(n_radial, max_angular, cutoff, width), ps_kernel(n_radial, max_angular)],
                 ["ps"], cutoff=cutoff)


def energy(species=(1, 6, 8), n_radial=4, max_angular=3) -> ir.Module:
    fixed = tuple(species)
    sp = ir.SpeciesDomain("S", fixed)
    w_domains = (sp, sp, sp, ir.RangeDomain("angular", 0, max_angular + 1),
                 ir.RangeDomain("radial", 0, n_radial), ir.RangeDomain("radial", 0, n_radial))
    params = (ir.ParamDecl("w", w_domains, ("zeros", ())), ir.ParamDecl("e0", (sp,), ("zeros", ())))
    type_i = ir.Data("S", "type", (V("i"),))
    ps_access = ir.BlockRef("ps", (("center_type", type_i), ("neighbor_1_type", V("b1")), ("neighbor_2_type", V("b2"))),
                            (ir.Slot("atoms", V("i"), "S"),), (),
                            (ir.Slot("value", V("l")), ir.Slot("value", V("n1")), ir.Slot("value", V("n2"))))
    inner = ir.Reduce(
        (ir.Binder("b1", sp), ir.Binder("b2", sp), ir.Binder("l", ir.RangeDomain("angular", 0, max_angular + 1)),
         ir.Binder("n1", ir.RangeDomain("radial", 0, n_radial)), ir.Binder("n2", ir.RangeDomain("radial", 0, n_radial))),
        mul(ir.ParamRef("w", (type_i, V("b1"), V("b2"), V("l"), V("n1"), V("n2"))), ps_access),
        ir.Binary("le", V("b1"), V("b2")),
    )
    body = ir.Reduce((ir.Binder("i", ir.AtomsDomain("S")),),
                     ir.Binary("add", ir.ParamRef("e0", (type_i,)), inner),
                     ir.Binary("eq", ir.Data("S", "system", (V("i"),)), V("s")))
    kernel = ir.TensorKernel("energy", (ir.Binder("s", ir.SystemsDomain("S")),),
                             keys=(ir.Entry("_", "value", C(0)),), samples=(ir.Entry("system", "value", V("s")),),
                             components=(), properties=(ir.Entry("energy", "value", C(0)),), body=body)
    kernels = [rho_kernel(n_radial, max_angular, species=fixed), ps_kernel(n_radial, max_angular, species=fixed), kernel]
    return _base("soap_energy", kernels, ["energy"], params=params)


def convolution(lmax=2, width=16, cutoff=4.0, n_k=8, convention="metatensor") -> ir.Module:
    angular = ir.RangeDomain("angular", 0, lmax + 1)
    distance = ir.Data("P", "distance", (V("p"),))
    radial = ir.Reduce((ir.Binder("k", ir.RangeDomain("range(8)", 0, n_k)),),
                       mul(ir.Call("gto", (distance, V("k")), (("width", 0.5),)),
                           ir.Call("cosine_cutoff", (distance,), (("cutoff", cutoff), ("width", 0.5))),
                           ir.ParamRef("wr", (V("k"), V("l1"), V("l2"), V("L"), V("q")))))
    h = ir.BlockRef("h", (("o3_lambda", V("l2")), ("o3_sigma", C(1))),
                    (ir.Slot("atoms", ir.Data("P", "second", (V("p"),)), "S"),), (ir.Slot("value", V("m2")),),
                    (ir.Slot("value", V("q")),))
    inner = ir.Reduce(
        (ir.Binder("l1", angular), ir.Binder("l2", angular),
         ir.Binder("m1", ir.IrrepDomain(V("l1"), lmax)), ir.Binder("m2", ir.IrrepDomain(V("l2"), lmax))),
        mul(radial, ir.Call("cg", (V("l1"), V("m1"), V("l2"), V("m2"), V("L"), V("M"))),
            ir.Call("sph", (ir.Data("P", "vector", (V("p"),)), V("l1"), V("m1"))), h),
        ir.Binary("eq", ir.Binary("mod", ir.Binary("add", ir.Binary("add", V("l1"), V("l2")), V("L")), C(2)), C(0)),
    )
    body = ir.Reduce((ir.Binder("p", ir.PairsFrom("P", V("i"))),), inner)
    kernel = ir.TensorKernel(
        "msg",
        (ir.Binder("L", angular), ir.Binder("i", ir.AtomsDomain("S")), ir.Binder("M", ir.IrrepDomain(V("L"), lmax)),
         ir.Binder("q", ir.RangeDomain("channel", 0, width))),
        keys=(ir.Entry("o3_lambda", "value", V("L")), ir.Entry("o3_sigma", "value", C(1))),
        samples=(atoms_entry(),), components=(ir.Entry("o3_mu", "value", V("M")),),
        properties=(ir.Entry("q", "value", V("q")),), body=body)
    params = (ir.ParamDecl("wr", (ir.RangeDomain("range(8)", 0, n_k), angular, angular, angular,
                                  ir.RangeDomain("channel", 0, width)), ("normal", (0.0, 1.0))),)
    tensormaps = (ir.TensorMapInput("h", ("o3_lambda", "o3_sigma"), ("system", "atom"), ("o3_mu",), ("q",)),)
    return _base("equivariant_convolution", [kernel], ["msg"], params=params, tensormaps=tensormaps,
                 cutoff=cutoff, convention=convention)


def features(batch, lmax=2, width=16, seed=0) -> TensorMap:
    """A random input `h` for the convolution: one block per l, samples of every atom."""
    rng = np.random.default_rng(seed)
    samples = Labels(["system", "atom"], batch.atom_label_values())
    blocks = []
    for l in range(lmax + 1):
        blocks.append(TensorBlock(rng.normal(size=(batch.n_atoms, 2 * l + 1, width)), samples,
                                  [Labels(["o3_mu"], np.arange(-l, l + 1, dtype=np.int32)[:, None])],
                                  Labels(["q"], np.arange(width, dtype=np.int32)[:, None])))
    keys = Labels(["o3_lambda", "o3_sigma"], np.array([[l, 1] for l in range(lmax + 1)], dtype=np.int32))
    return TensorMap(keys, blocks)


def corners() -> ir.Module:
    """Small kernels over other parts of the IR: vectors, elementary functions, pair samples,
    an equality-bound range, a direct all-pairs scan, integer arithmetic, xyz components."""
    vec = ir.Data("P", "vector", (V("p"),))
    distance = ir.Data("P", "distance", (V("p"),))
    first_position = ir.Data("S", "positions", (ir.Data("P", "first", (V("p"),)),))
    # per pair: a few elementary functions of the geometry, pairs as samples
    pair_kernel = ir.TensorKernel(
        "pair_features",
        (ir.Binder("p", ir.PairsDomain("P")), ir.Binder("c", ir.RangeDomain("feature", 0, 4))),
        keys=(ir.Entry("_", "value", C(0)),), samples=(ir.Entry("p", "pairs", V("p"), "P"),), components=(),
        properties=(ir.Entry("c", "value", V("c")),),
        body=ir.Select(ir.Binary("eq", V("c"), C(0)), ir.Call("tanh", (distance,)),
                       ir.Select(ir.Binary("eq", V("c"), C(1)),
                                 ir.Call("dot", (vec, ir.Binary("mul", vec, C(0.5)))),
                                 ir.Select(ir.Binary("eq", V("c"), C(2)),
                                           ir.Call("silu", (ir.Call("norm", (ir.Binary("sub", vec, first_position),)),)),
                                           ir.Call("sigmoid", (ir.Binary("pow", distance, C(1.5)),))))),
    )
    # per atom and xyz: a scan over all pairs with a where on the first atom (segment) and on the second's type
    scan = ir.Reduce((ir.Binder("p", ir.PairsDomain("P")),),
                     mul(ir.Data("P", "vector", (V("p"), V("x"))), ir.Call("exp", (ir.Unary("neg", distance),))),
                     ir.Binary("and", ir.Binary("eq", ir.Data("P", "first", (V("p"),)), V("i")),
                               ir.Binary("ne", ir.Data("S", "type", (ir.Data("P", "second", (V("p"),)),)), C(1))))
    force_like = ir.TensorKernel(
        "dipole_like",
        (ir.Binder("i", ir.AtomsDomain("S")), ir.Binder("x", ir.XyzDomain())),
        keys=(ir.Entry("center_type", "value", ir.Data("S", "type", (V("i"),))),), samples=(atoms_entry(),),
        components=(ir.Entry("xyz", "value", V("x")),), properties=(ir.Entry("_", "value", C(0)),),
        body=ir.Binary("add", scan, ir.Binary("div", ir.Data("S", "positions", (V("i"), V("x"))), C(3))),
    )
    # per atom: counts by integer arithmetic; a key computed with % and an equality-bound range index
    counts = ir.TensorKernel(
        "counts",
        (ir.Binder("i", ir.AtomsDomain("S")), ir.Binder("r", ir.RangeDomain("bucket", 0, 3))),
        keys=(ir.Entry("parity", "value", ir.Binary("mod", ir.Data("S", "type", (V("i"),)), C(2))),),
        samples=(atoms_entry(),), components=(), properties=(ir.Entry("r", "value", V("r")),),
        body=ir.Reduce((ir.Binder("p", ir.PairsFrom("P", V("i"))), ir.Binder("k", ir.RangeDomain("bucket", 0, 3))),
                       ir.Binary("add", ir.Binary("mul", V("k"), V("k")), C(1)),
                       ir.Binary("and", ir.Binary("eq", V("k"), V("r")),
                                 ir.Binary("lt", ir.Binary("mul", distance, C(1.0)),
                                           ir.Binary("add", C(2.0), ir.Binary("mul", V("r"), C(1.5)))))),
        where=ir.Unary("not", ir.Binary("eq", V("r"), C(7))),
    )
    # per system: a sum over its atoms (a segment of the batch), through abs and log
    system_sum = ir.Reduce((ir.Binder("i", ir.AtomsDomain("S")),),
                           ir.Call("sin", (ir.Data("S", "positions", (V("i"), C(2))),)),
                           ir.Binary("eq", ir.Data("S", "system", (V("i"),)), V("s")))
    per_system = ir.TensorKernel(
        "per_system",
        (ir.Binder("s", ir.SystemsDomain("S")),),
        keys=(ir.Entry("_", "value", C(0)),), samples=(ir.Entry("system", "value", V("s")),), components=(),
        properties=(ir.Entry("_", "value", C(0)),),
        body=ir.Call("log", (ir.Binary("add", C(2.0), ir.Call("abs", (system_sum,))),)),
    )
    return _base("corners", [pair_kernel, force_like, counts, per_system],
                 ["pair_features", "dipole_like", "counts", "per_system"], cutoff=3.5)
