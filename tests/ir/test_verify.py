"""The IR verifier (`mtdsl/ir/verify.py`) over every example program at each stage (lowered, after
the derivative passes, after fusion, the VJP/JVP product kernels), and on hand-broken IR: each
broken rule is refused with a message naming the kernel and the node."""

import dataclasses
import pathlib

import pytest

from mtdsl.codegen.schedule.derived import extended_module
from mtdsl.compile import check_and_lower
from mtdsl.errors import Unsupported
from mtdsl.ir.passes import autodiff as ad
from mtdsl.ir.derivative_nodes import GradRows, GradValue
from mtdsl.ir.passes import products
from mtdsl.ir import nodes as ir
from mtdsl.ir import roles
from mtdsl.ir.verify import VerifyError, verify, verify_gradients
from mtdsl.ir.passes.autodiff import module_gradients

from ..codegen.test_random_programs import random_module

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
#: the test programs beside the examples (`tests/runtime/programs/`)
PROGRAMS = pathlib.Path(__file__).resolve().parents[1] / "runtime" / "programs"
SMALL = {"max_angular": 2, "n_radial": 3}


def _hypers(path):
    text = path.read_text()
    return {k: v for k, v in SMALL.items() if f"hyper {k}" in text}


def with_gradients(tmp_path, program):
    """A copy of the program (and the files it imports, at the same relative places) whose
    outputs declare every gradient."""
    root = EXAMPLES.parent
    for source in list(EXAMPLES.glob("*.mt")) + list(PROGRAMS.glob("*.mt")):
        lines = [f"output {line.split()[1]} with gradients(positions, strain, cell)" if line.startswith("output ")
                 else line for line in source.read_text().splitlines()]
        copy = tmp_path / source.relative_to(root)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text("\n".join(lines) + "\n")
    return tmp_path / program.relative_to(root)


def product_module(module, gradients):
    """`module` with the stand-ins and the VJP / JVP kernels of the terms of `gradients`
    (positions and cell) and of the tensors they read through (`runtime/gradients/native_products.py`)."""
    kernels = {k.name: k for k in module.kernels}
    stand_ins, made = {}, []
    for wrt in ("positions", "cell"):
        stand_ins[roles.Tangent(wrt)] = products.tangent_kernel(module, wrt)
        for name, gradient in gradients.get(wrt, {}).items():
            stand_ins[roles.Cotangent(name)] = products.cotangent_kernel(kernels[name])
            for k, term in enumerate(gradient.terms):
                for lower in (products.vjp_kernel, products.jvp_kernel):
                    try:
                        made.append(lower(module, kernels[name], gradient, k, term))
                    except Unsupported:
                        pass
            for read in kernels:
                partial = ad.differentiate_tensor(module, name, read) if read != name else None
                if partial is None:
                    continue
                stand_ins[roles.TensorTangent(read)] = products.stand_in_kernel(kernels[read], roles.TensorTangent(read))
                for k, term in enumerate(partial.terms):
                    for lower in (lambda: products.tensor_vjp_kernel(module, kernels[name], kernels[read], partial, k, term),
                                  lambda: products.tensor_jvp_kernel(module, kernels[name], partial, k, term)):
                        try:
                            made.append(lower()[0])
                        except Unsupported:
                            pass
    unique = {k.name: k for k in made}
    return dataclasses.replace(module, kernels=module.kernels + tuple(stand_ins.values()) + tuple(unique.values()))


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """Per example program: (lowered module, derived module, fused module, product module)."""
    found = {}
    tmp_path = tmp_path_factory.mktemp("programs")
    for example in sorted(EXAMPLES.glob("*.mt")) + sorted(PROGRAMS.glob("*.mt")):
        path = with_gradients(tmp_path, example)
        module = check_and_lower(path, species=[1, 8], **_hypers(example))[1]
        gradients = module_gradients(module)
        extended, _ = extended_module(module, gradients)
        derived = dataclasses.replace(extended, fused=())
        found[example.name] = (module, derived, extended, product_module(module, gradients))
    return found


def test_every_example_is_verified_at_every_stage(stages):
    assert len(stages) >= 8
    derived = 0
    for name, (lowered, after_derivatives, fused, with_products) in stages.items():
        verify(lowered, "lowered")
        verify(after_derivatives, "derived")
        verify(fused, "fused")
        verify(with_products, "derived")
        derived += len(after_derivatives.kernels) - len(lowered.kernels)
        assert any(isinstance(k.name, roles.VjpKernel) for k in with_products.kernels), name
    assert derived > 0  # the derivative passes did add kernels to check


@pytest.mark.parametrize("seed", range(8))
def test_random_modules_are_verified_at_every_stage(seed):
    """The random kernels of `tests/codegen/test_random_programs.py` and their derivatives
    (every kernel, every gradient it has)."""
    module = verify(random_module(seed), "lowered")
    gradients = {}
    for wrt in ("positions", "strain", "cell"):
        for kernel in module.kernels:
            try:
                gradients.setdefault(wrt, {}).update(ad.differentiate(module, wrt, outputs=[kernel.name]))
            except ad.AutodiffError:  # does not depend on wrt
                pass
    extended, _ = extended_module(module, gradients)
    assert len(extended.kernels) > len(module.kernels)
    verify(dataclasses.replace(extended, fused=()), "derived")
    verify(extended, "fused")
    verify(product_module(module, gradients), "derived")


def test_derived_kernels_carry_their_roles_as_types(stages):
    _, derived, fused, _ = stages["soap_power_spectrum.mt"]
    scatters = [k for k in derived.kernels if isinstance(k.name, roles.ScatterKernel)]
    assert scatters and all(isinstance(k.indices[0].domain.pairs, roles.RowMap) for k in scatters)
    assert fused.fused and all(isinstance(f.name, roles.FusedName) for f in fused.fused)
    reads_rows = [k for k in derived.kernels if "GradientRows" in repr(_sources(k))]
    assert reads_rows  # the power spectrum's terms read the expansion's gradient rows


def _sources(kernel):
    found = []

    def walk(node):
        if isinstance(node, ir.Data):
            found.append(type(node.source).__name__)
        if dataclasses.is_dataclass(node):
            for field in dataclasses.fields(node):
                walk(getattr(node, field.name))
        elif isinstance(node, tuple):
            for item in node:
                walk(item)
    walk(kernel)
    return found


# ---- hand-broken IR ----------------------------------------------------------------------------------


def _replace_kernel(module, name, **changes):
    kernels = tuple(dataclasses.replace(k, **changes) if k.name == name else k for k in module.kernels)
    return dataclasses.replace(module, kernels=kernels)


def _first(module, kind):
    return next(k for k in module.kernels if isinstance(k.name, kind))


def test_an_unbound_variable_is_refused(stages):
    lowered = stages["spherical_expansion.mt"][0]
    kernel = lowered.kernels[-1]
    broken = _replace_kernel(lowered, kernel.name, body=ir.Binary("mul", kernel.body, ir.Var("nowhere")))
    with pytest.raises(VerifyError, match=rf"kernel {kernel.name} \(lowered\): nowhere: variable nowhere is bound by no"):
        verify(broken, "lowered")


def test_a_variable_of_a_sum_is_unbound_outside_it(stages):
    lowered = stages["soap_power_spectrum.mt"][0]
    kernel = lowered.kernels[-1]
    inner = next(node for node in _walk(kernel.body) if isinstance(node, ir.Reduce))
    leaked = ir.Binary("mul", kernel.body, ir.Var(inner.binders[0].name))
    with pytest.raises(VerifyError, match=f"kernel {kernel.name}.*variable {inner.binders[0].name} is bound by no"):
        verify(_replace_kernel(lowered, kernel.name, body=leaked), "lowered")


def _walk(node):
    yield node
    if dataclasses.is_dataclass(node):
        for field in dataclasses.fields(node):
            yield from _walk(getattr(node, field.name))
    elif isinstance(node, tuple):
        for item in node:
            yield from _walk(item)


@pytest.mark.parametrize("domain, message", [
    (ir.RangeDomain("radial", 4, 2), "a range from 4 to 2"),
    (ir.PairsDomain("nowhere"), "'nowhere' is not a neighbour list"),
    (ir.AtomsDomain("other"), "systems 'other' are not an input"),
    (ir.IrrepDomain(ir.Const(1), -1), "maximal degree -1"),
    (GradRows("rho", "positions"), "GradRows is no domain of the IR"),
])
def test_a_malformed_domain_is_refused(stages, domain, message):
    lowered = stages["spherical_expansion.mt"][0]
    kernel = lowered.kernels[-1]
    indices = kernel.indices[:-1] + (ir.Binder(kernel.indices[-1].name, domain),)
    with pytest.raises(VerifyError, match=rf"kernel {kernel.name} \(lowered\): .*{message}"):
        verify(_replace_kernel(lowered, kernel.name, indices=indices), "lowered")


def test_roles_are_refused_after_lowering_and_out_of_place(stages):
    lowered, derived, _, with_products = stages["soap_power_spectrum.mt"]
    kernel = lowered.kernels[-1]
    rows = ir.Data(roles.GradientRows(lowered.kernels[0].name, "positions"), "block", (ir.Const(0),))
    broken = _replace_kernel(lowered, kernel.name, body=ir.Binary("mul", kernel.body, rows))
    with pytest.raises(VerifyError, match=rf"kernel {kernel.name} \(lowered\): .*GradientRows outside a term, scatter"):
        verify(broken, "lowered")
    # a scatter kernel of another stage's module is refused after lowering
    scatter = _first(derived, roles.ScatterKernel)
    with pytest.raises(VerifyError, match=rf"kernel {scatter.name} \(lowered\): .*ScatterKernel kernel after lowering"):
        verify(derived, "lowered")
    # a cotangent read by a JVP kernel
    vjp, jvp = _first(with_products, roles.VjpKernel), _first(with_products, roles.JvpKernel)
    cotangent = next(node for node in _walk(vjp.body) if isinstance(node, ir.BlockRef)
                     and isinstance(node.tensor, roles.Cotangent))
    broken = _replace_kernel(with_products, jvp.name, body=ir.Binary("mul", jvp.body, cotangent))
    with pytest.raises(VerifyError, match=rf"kernel {jvp.name} \(derived\): .*a cotangent read outside a VJP kernel"):
        verify(broken, "derived")
    # a row map range in a kernel it does not belong to
    other = next(k for k in derived.kernels if isinstance(k.name, roles.ScatterKernel) and k.name != scatter.name
                 and k.indices[0].domain != scatter.indices[0].domain)
    indices = (scatter.indices[0],) + other.indices[1:]
    with pytest.raises(VerifyError, match=rf"kernel {other.name} \(derived\): .*RowMap range outside the scatter"):
        verify(_replace_kernel(derived, other.name, indices=indices), "derived")


def test_a_gradients_written_values_are_read_by_dense_values(stages):
    """The terms of the power spectrum read the expansion's gradient as its scatter kernels wrote
    it, by a `DenseValues` field; its string form, or a read with a position missing, is refused."""
    _, derived, _, _ = stages["soap_power_spectrum.mt"]
    kernel, read = next((k, node) for k in derived.kernels for node in _walk(k.body)
                        if isinstance(node, ir.Data) and isinstance(node.source, roles.GradientValues))
    assert isinstance(read.field, roles.DenseValues) and len(read.index) == len(read.field.sizes) + 1
    verify(derived, "derived")
    for broken, message in ((dataclasses.replace(read, field=str(read.field)), "read by DenseValues, not 'value:"),
                            (dataclasses.replace(read, index=read.index[:-1]), "one position per axis")):
        body = _substituted(kernel.body, read, broken)
        with pytest.raises(VerifyError, match=rf"\(derived\): .*{message}"):
            verify(_replace_kernel(derived, kernel.name, body=body), "derived")


def _substituted(node, old, new):
    """`node` with the sub-node `old` (by identity) replaced by `new`."""
    if node is old:
        return new
    if isinstance(node, tuple):
        return tuple(_substituted(item, old, new) for item in node)
    if dataclasses.is_dataclass(node):
        return dataclasses.replace(node, **{f.name: _substituted(getattr(node, f.name), old, new)
                                            for f in dataclasses.fields(node) if f.init})
    return node


@pytest.mark.parametrize("body, message", [
    (lambda b, s: ir.Binary("and", b, ir.Const(True)), r"an operand of and of type real, not bool"),
    (lambda b, s: ir.Select(ir.Const(1.5), b, b), r"a select's condition of type real, not bool"),
    (lambda b, s: ir.Binary("mod", b, ir.Const(2)), r"mod of a real"),
    (lambda b, s: ir.Call("nope", (b,)), r"unknown function 'nope'"),
    (lambda b, s: ir.Binary("lt", ir.Data(s, "positions", (ir.Const(0),)), b), r"a vector as an operand of lt"),
    (lambda b, s: ir.Binary("mul", b, ir.Data(s, "mass", (ir.Const(0),))), r"has no field 'mass'"),
])
def test_inconsistent_types_are_refused(stages, body, message):
    lowered = stages["lennard_jones.mt"][0]
    kernel = lowered.kernels[-1]
    made = body(kernel.body, lowered.systems[0].name)
    with pytest.raises(VerifyError, match=rf"kernel {kernel.name} \(lowered\): .*{message}"):
        verify(_replace_kernel(lowered, kernel.name, body=made), "lowered")


def test_module_rules(stages):
    lowered, _, fused, _ = stages["soap_power_spectrum.mt"]
    first, last = lowered.kernels[0], lowered.kernels[-1]
    with pytest.raises(VerifyError, match=rf"kernel {last.name} .*'{first.name}' is neither an input nor a kernel computed before"):
        verify(dataclasses.replace(lowered, kernels=(last, first) + lowered.kernels[1:-1]), "lowered")
    with pytest.raises(VerifyError, match="a fused kernel before fusion"):
        verify(fused, "derived")
    with pytest.raises(VerifyError, match="an output that no kernel computes"):
        verify(dataclasses.replace(lowered, outputs=(ir.Output("nope"),)), "lowered")
    with pytest.raises(ValueError, match="unknown stage"):
        verify(lowered, "rendered")


# ---- the gradient kernels of autodiff (the one stage where derivative nodes belong) ------------------


def _partials(module):
    """The derivatives of every kernel with respect to every computed tensor it reads."""
    found = {}
    for kernel in module.kernels:
        for read in module.kernels:
            if read.name != kernel.name:
                partial = ad.differentiate_tensor(module, kernel.name, read.name)
                if partial is not None:
                    found.setdefault(ad.tensor_wrt(read.name), {})[kernel.name] = partial
    return found


def test_every_example_gradient_is_verified(stages):
    checked = 0
    for name, (lowered, *_) in stages.items():
        for gradients in (module_gradients(lowered), _partials(lowered)):
            verify_gradients(lowered, gradients)
            checked += sum(len(g.terms) for by_kernel in gradients.values() for g in by_kernel.values())
    assert checked > 0


@pytest.mark.parametrize("seed", range(8))
def test_random_module_gradients_are_verified(seed):
    module = random_module(seed)
    for wrt in ("positions", "strain", "cell"):
        for kernel in module.kernels:
            try:
                verify_gradients(module, {wrt: ad.differentiate(module, wrt, outputs=[kernel.name])})
            except ad.AutodiffError:  # does not depend on wrt
                pass


def test_broken_gradient_terms_are_refused(stages):
    lowered = stages["soap_power_spectrum.mt"][0]
    gradient = module_gradients(lowered)["positions"]["ps"]
    term = next(t for t in gradient.terms if any(isinstance(b.domain, GradRows) for b in t.binders))

    def broken(**changes):
        return {"positions": {"ps": dataclasses.replace(gradient, terms=(dataclasses.replace(term, **changes),))}}

    verify_gradients(lowered, broken())
    with pytest.raises(VerifyError, match=r"kernel ps \(autodiff\): nowhere: variable nowhere is bound by no"):
        verify_gradients(lowered, broken(coefficient=ir.Binary("mul", term.coefficient, ir.Var("nowhere"))))
    with pytest.raises(VerifyError, match=r"the gradient rows of 'ps', not a kernel computed before"):
        verify_gradients(lowered, broken(binders=(ir.Binder(term.binders[0].name, GradRows("ps", "positions")),)))
    with pytest.raises(VerifyError, match=r"a term's where of type real, not bool"):
        verify_gradients(lowered, broken(where=ir.Const(1.5)))
    with pytest.raises(VerifyError, match=r"GradValue is no expression of the IR: a node of the derivative IR"):
        value = next(node for node in _walk(term.coefficient) if isinstance(node, GradValue))
        kernel = lowered.kernels[-1]
        verify(_replace_kernel(lowered, kernel.name, body=ir.Binary("mul", kernel.body, value)), "lowered")
