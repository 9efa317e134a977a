"""Fused kernels (`codegen/schedule/fuse.py`, `planning.plan_fused`) rendered by both backends: the LLVM
`KernelBuilder.build_fused` beside the C++ `render_fused`. The members' buffers come first in the
arguments, the pair tables are filled once per pair for all members, and the plain kernels'
IR does not change when the module holds fused kernels. The values are checked end to end
through the runtime."""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import re

import llvmlite.binding as llvm
import pytest

import mtdsl
from mtdsl.codegen.schedule import abi
from mtdsl.codegen import cpp, llvm as backend
from mtdsl.codegen.schedule import fuse
from mtdsl.codegen.schedule import derived
from mtdsl.codegen.schedule.parts import first_terms

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def modules():
    model = mtdsl.compile(EXAMPLES / "spherical_expansion.mt", backend="interpreter", n_radial=3, max_angular=2)
    # rendered as compile_module renders it: a kernel of several terms (the expansion with its
    # central-atom term) with its first term, the pair sum (codegen/schedule/parts.py)
    module, _, parts = first_terms(model.module)
    assert parts, "the spherical expansion's body is no longer a sum of terms"
    ext, info = derived.extended_module(module, {"positions": model.gradient_kernels["positions"]})
    plain = dataclasses.replace(ext, fused=())  # whether or not extended_module adds them
    fused, _, _ = fuse.fused_kernels(plain, info["scatters"])
    assert fused, "no fused kernel for spherical_expansion's positions gradient"
    return plain, dataclasses.replace(plain, fused=fused)


@pytest.fixture(scope="module")
def rendered(modules):
    plain, with_fused = modules
    return backend.render_module(plain), backend.render_module(with_fused)


def _tables(source: str) -> collections.Counter:
    """The stack tables of a function by kind: `mt_sph2`, `mt_dsph2`, `spline`, ... (`alloca` names: a
    table is named after what fills it, `codegen/llvm/printer.py`)."""
    return collections.Counter(re.findall(r'%"([a-z_]+\d*)(?:\.\d+)?" = alloca', source))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rendered_in_both_backends(modules, dtype):
    _, module = modules
    for rendered in (cpp.render_module(module, dtype), backend.render_module(module, dtype)):
        for fused in module.fused:
            assert fused.name not in rendered.unsupported, rendered.unsupported[fused.name]
            kernel = rendered.kernels[fused.name]
            count = len(fused.kernels)
            assert kernel.arrays[:count] == [abi.OutputBuffer(j) for j in range(count)]
            assert all(not isinstance(d, abi.OutputBuffer) for d in kernel.arrays[count:])
            assert len(kernel.plan.plans) == count


def test_llvm_arguments_as_cpp(modules):
    """Both backends read the same arrays and scalars in the same order (one runtime binding)."""
    _, module = modules
    native, jit = cpp.render_module(module), backend.render_module(module)
    for fused in module.fused:
        assert jit.kernels[fused.name].arrays == native.kernels[fused.name].arrays
        # C++ takes the driver's range as two scalars, LLVM as the function's own (lo, hi)
        cpp_scalars = [d for d in native.kernels[fused.name].scalars if not isinstance(d, abi.DriverRange)]
        assert jit.kernels[fused.name].scalars == cpp_scalars


def test_llvm_ir_verifies(rendered):
    _, with_fused = rendered
    for fused in with_fused.module.fused:
        kernel = with_fused.kernels[fused.name]
        assert kernel.symbol.startswith("mt_fused_")
        assert f'define i64 @"{kernel.symbol}"' in with_fused.source
    parsed = llvm.parse_assembly(with_fused.source)
    parsed.verify()
    backend.optimize(with_fused.source)


def test_parallel_over_the_first_shared_loop(rendered):
    _, with_fused = rendered
    for fused in with_fused.module.fused:
        kernel = with_fused.kernels[fused.name]
        first = kernel.plan.plans[0].loops[0]
        assert kernel.plan.parallel
        assert kernel.driver_var == first.var
        assert kernel.driver_count is not None
        if isinstance(kernel.driver_count, tuple):
            assert kernel.driver_count in kernel.scalars
        assert backend.LLVMKernel(0, kernel).parallel  # run in chunks of the driver on the pool's threads


def test_plain_kernels_unchanged(rendered):
    plain, with_fused = rendered
    assert plain.unsupported == {name: why for name, why in with_fused.unsupported.items()
                                 if name in plain.unsupported}
    for name, kernel in plain.kernels.items():
        other = with_fused.kernels[name]
        assert (other.symbol, other.arrays, other.scalars, other.source) == (
            kernel.symbol, kernel.arrays, kernel.scalars, kernel.source)
        assert other.driver_count == kernel.driver_count and other.driver_var == kernel.driver_var
    assert set(with_fused.kernels) - set(plain.kernels) == {f.name for f in with_fused.module.fused}


def test_pair_tables_once_per_pair(rendered):
    """The `sph` table, its gradient and the radial splines are filled once in the fused function:
    as many tables of each kind as the member that uses most of them, not their sum."""
    _, with_fused = rendered
    for fused in with_fused.module.fused:
        tables = _tables(with_fused.kernels[fused.name].source)
        members = [_tables(with_fused.kernels[name].source) for name in fused.names]
        shared = [kind for kind in tables if kind.startswith(("mt_sph", "mt_dsph", "spline"))]
        assert any(kind.startswith("mt_sph") for kind in shared) and any(k.startswith("spline") for k in shared)
        for kind in shared:
            assert tables[kind] == max(m[kind] for m in members), (kind, tables, members)
        assert all(sum(m[kind] for m in members) > tables[kind] for kind in shared)  # every kind is shared
