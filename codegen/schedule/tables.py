"""The compile-time tables of a module and what the renderers know of them, computed once for both.

`ModuleTables` owns, per module being rendered: the radial splines of
`soap_radial` (`mtdsl.math.radial`, through the compile-time array cache), the
dense Clebsch-Gordan tables of `cg`, the keys of the run-time lookup tables of
block accesses, and the tensors whose dense buffers later kernels may read
(`grids`, see `codegen/schedule/grid.py`). Its `constants` are the
`("const", name)` arrays of `RenderedModule.constants`. The normalization of the
real spherical harmonics that both backends' `sph` tables use is here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from mtdsl.ir import nodes as ir
from mtdsl.math.cg import cg as cg_block
from mtdsl.math.radial import soap_radial_spline

from .. import cache


def sph_normalization(l: int, m: int) -> float:
    """`sqrt((2 - δ_m0) (2l + 1) (l - m)! / (4π (l + m)!))` of the real harmonic of degree `l`, order `m >= 0`."""
    ratio = Fraction(2 * l + 1) * Fraction(math.factorial(l - m), math.factorial(l + m))
    if m > 0:
        ratio *= 2
    return math.sqrt(float(ratio) / (4.0 * math.pi))


@dataclass(frozen=True)
class SplineTables:
    """What a kernel needs of `mtdsl.math.radial.RadialSpline` (see `mt_spline` in the C++ template)."""

    step: float
    n_intervals: int
    cutoff: float
    values: np.ndarray
    derivatives: np.ndarray


def spline_tables(max_angular: int, n_radial: int, cutoff: float, width: float) -> SplineTables:
    """The radial spline of `soap_radial`, through the compile-time array cache (building one takes seconds)."""
    def compute():
        spline = soap_radial_spline(max_angular, n_radial, cutoff, width)
        return {"step": np.array(spline.step), "n_intervals": np.array(spline.n_intervals),
                "cutoff": np.array(spline.cutoff), "values": spline.values, "derivatives": spline.derivatives}

    arrays = cache.cached_arrays("soap_radial_spline", (max_angular, n_radial, float(cutoff), float(width), 1e-10),
                                 compute)
    return SplineTables(float(arrays["step"]), int(arrays["n_intervals"]), float(arrays["cutoff"]),
                        arrays["values"], arrays["derivatives"])


class ModuleTables:
    """The compile-time tables and the block-access keys of one module being rendered."""

    def __init__(self, module: ir.Module, dtype: str = "float64"):
        if dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be float64 or float32, got {dtype!r}")
        if module.convention not in ("metatensor", "e3nn"):
            raise ValueError(f"unknown sph convention {module.convention!r}")
        self.module = module
        self.dtype = dtype
        self.constants: dict[str, np.ndarray] = {}
        self.block_refs: dict = {}
        self.splines: dict = {}
        self.grids: dict = {}  # tensor name -> kernel whose dense buffer later kernels may read

    def spline(self, max_angular: int, n_radial: int, cutoff: float, width: float):
        """`(name, SplineTables)`; its values and derivatives are the constants `name_values`, `name_derivatives`."""
        key = (max_angular, n_radial, cutoff, width)
        if key not in self.splines:
            spline = spline_tables(max_angular, n_radial, cutoff, width)
            name = f"spline{len(self.splines)}_l{max_angular}_n{n_radial}"
            self.constants[name + "_values"] = np.ascontiguousarray(spline.values)
            self.constants[name + "_derivatives"] = np.ascontiguousarray(spline.derivatives)
            self.splines[key] = (name, spline)
        return self.splines[key]

    def cg_table(self, top: int) -> str:
        """The constant `cg_l{top}`: `[l1][l2][L][m1 + top][m2 + top][M + top]`, the interpreter's construction."""
        name = f"cg_l{top}"
        if name not in self.constants:
            size = 2 * top + 1
            table = np.zeros((top + 1,) * 3 + (size,) * 3)
            for a in range(top + 1):
                for b in range(top + 1):
                    for c in range(abs(a - b), min(a + b, top) + 1):
                        block = cg_block(a, b, c, self.module.convention)
                        table[a, b, c, top - a: top + a + 1, top - b: top + b + 1, top - c: top + c + 1] = block
            self.constants[name] = table
        return name

    def block_ref_key(self, expr: ir.BlockRef) -> tuple:
        """The run-time lookup tables a block access needs, named by what determines them."""
        key = (expr.tensor, tuple(label for label, _ in expr.keys),
               tuple((s.kind, s.source) for s in expr.samples),
               tuple((s.kind, s.source) for s in expr.components),
               tuple((s.kind, s.source) for s in expr.properties))
        self.block_refs[key] = True
        return key
