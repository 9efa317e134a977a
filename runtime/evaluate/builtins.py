"""The built-in functions of the language in the evaluator, each written once over numpy or torch.

`BuiltinCalls` is the part of `Evaluator` that evaluates `ir.Call`: the
arithmetic goes through `dispatch`, so a call on torch values is a torch
formula that autograd differentiates to every order. Three built-ins read
tables that numpy and torch compute differently (the same values): the
spherical harmonics (mtdsl/math/sph.py, or its recurrences in torch below),
the SOAP radial spline (its numpy `evaluate`, or the cubic Hermite formula
below) and the cosine cutoff. `cg` is a constant; the derivative built-ins
(`d_sph`, ..., mtdsl/ir/passes/autodiff.py) run on numpy only: torch differentiates
by autograd instead.
"""

from __future__ import annotations

import math

import numpy as np

from mtdsl.ir import nodes as ir
from mtdsl.math import functions as math_functions
from mtdsl.math.cg import cg as cg_block
from mtdsl.math.radial import soap_radial_spline
from mtdsl.math.sph import _normalization, e3nn_change_of_basis, recurrences
from mtdsl.math.sph import spherical_harmonics as numpy_spherical_harmonics

from ..bindings import RunError
from ..named import VECTOR_AXIS, Named, merge_missing, union_axes
from . import dispatch as xp
from .dispatch import apply


class BuiltinCalls:
    """`_call_<function>(expr, *args)` for every built-in; args are `Named` over numpy or torch."""

    def _eval_Call(self, expr: ir.Call, scope) -> Named:
        args = [self.evaluate(a, scope) for a in expr.args]
        method = getattr(self, f"_call_{expr.function}", None)
        if method is None:  # an elementwise built-in: its numpy or torch form (mtdsl/builtins/)
            return self._call_scalar(expr, *args)
        return method(expr, *args)

    def _call_scalar(self, expr, *args):
        return apply(lambda *values: xp.scalar_function(expr.function, *values), *args)

    def _call_cross(self, expr, u, v):
        return apply(xp.cross, u, v)

    def _call_to_irrep(self, expr, v, m):
        """Component `m` of irrep 1 of `v`: its Cartesian axis `IRREP1_AXES[convention][m + 1]`."""
        if VECTOR_AXIS not in v.axes:
            raise RunError("to_irrep() needs a vector as its first argument")
        axes = tuple(a for a in union_axes(v, m) if a != VECTOR_AXIS)
        values = xp.expand(v, axes + (VECTOR_AXIS,))
        order = np.asarray(ir.IRREP1_AXES[self.convention])
        axis = order[np.clip(m.expand(axes).astype(np.int64) + 1, 0, 2)]
        return Named(axes, xp.take_last(values, axis), merge_missing(v, m))

    def _call_norm(self, expr, v):
        return _reduce_vector(v, lambda d: xp.sqrt(xp.sum_last(d * d)))

    def _call_dot(self, expr, u, v):
        return _reduce_vector(apply(xp.multiply, u, v), xp.sum_last)

    def _call_gto(self, expr, r, n):
        width = float(expr.option("width"))

        def gto(rr, nn):
            power = xp.BINARY["pow"](rr, nn) if xp.is_tensor(rr) else rr**nn
            return power * xp.exp(-(rr * rr) / (2.0 * width * width))

        return apply(gto, r, n)

    def _call_cosine_cutoff(self, expr, r):
        cutoff, width = float(expr.option("cutoff")), float(expr.option("width"))
        if xp.is_tensor(r.data):
            return apply(lambda rr: cosine_cutoff(rr, cutoff, width), r)
        return apply(lambda rr: math_functions.cosine_cutoff(rr, cutoff, width), r)

    def _call_sph(self, expr, v, l, m):
        if VECTOR_AXIS not in v.axes:
            raise RunError("sph() needs a vector as its first argument")
        l_max = max(int(np.max(l.data)) if l.data.size else 0, 0)
        points = v.data.reshape(-1, 3)
        if xp.is_tensor(points):
            table = spherical_harmonics(points, l_max, self.convention)
        else:
            table = numpy_spherical_harmonics(points, l_max, convention=self.convention)
            table = table.astype(self.bindings.dtype, copy=False)
        table = table.reshape(tuple(v.data.shape[:-1]) + (table.shape[-1],))
        lm_axes = union_axes(l, m)
        ll, mm = np.broadcast_arrays(l.expand(lm_axes), m.expand(lm_axes))
        valid = (np.abs(mm) <= ll) & (ll >= 0)
        column = np.where(valid, ll * ll + ll + mm, 0)
        gathered = xp.mask_as(table[..., xp.from_numpy(column) if xp.is_tensor(table) else column], valid)
        return Named(v.axes[:-1] + lm_axes, gathered, merge_missing(v, l, m))

    def _call_cg(self, expr, l1, m1, l2, m2, L, M):
        arrays = [l1, m1, l2, m2, L, M]
        axes = union_axes(*arrays)
        values = np.broadcast_arrays(*(xp.detached(a).expand(axes) for a in arrays))
        degrees = {int(x) for a in (values[0], values[2], values[4]) for x in np.unique(a)}
        top = max(degrees) if degrees else 0
        size = 2 * top + 1
        table = np.zeros((top + 1,) * 3 + (size,) * 3)
        for a in range(top + 1):
            for b in range(top + 1):
                for c in range(abs(a - b), min(a + b, top) + 1):
                    block = cg_block(a, b, c, self.convention)
                    table[a, b, c, top - a : top + a + 1, top - b : top + b + 1, top - c : top + c + 1] = block
        d1, e1, d2, e2, d3, e3 = values
        valid = (np.abs(e1) <= d1) & (np.abs(e2) <= d2) & (np.abs(e3) <= d3)
        data = table[d1, d2, d3, np.clip(e1 + top, 0, size - 1), np.clip(e2 + top, 0, size - 1),
                     np.clip(e3 + top, 0, size - 1)] * valid
        return Named(axes, data.astype(self.bindings.dtype), merge_missing(*arrays))

    def _call_soap_radial(self, expr, r, n, l):
        n_radial = int(expr.option("n_radial"))
        cutoff = float(expr.option("cutoff"))
        width = float(expr.option("density_width"))
        l_max = int(np.max(l.data)) if l.data.size else 0
        spline = soap_radial_spline(max(l_max, 0), n_radial, cutoff, width)
        nl_axes = union_axes(n, l)
        nn, ll = np.broadcast_arrays(n.expand(nl_axes), l.expand(nl_axes))
        if xp.is_tensor(r.data):
            table = radial_spline(spline, r.data.reshape(-1))
            table = table.reshape(tuple(r.data.shape) + tuple(table.shape[1:]))
            data = table[..., xp.from_numpy(ll), xp.from_numpy(nn)]
        else:
            table = spline.evaluate(r.data.reshape(-1)).reshape(r.data.shape + (l_max + 1, n_radial))
            data = table[..., ll, nn].astype(self.bindings.dtype, copy=False)
        return Named(r.axes + nl_axes, data, merge_missing(r, n, l))

    # -- derivative built-ins (forward-mode gradients, see mtdsl/ir/passes/autodiff.py): numpy only ---------
    def _call_d_sph(self, expr, v, l, m, component=None):
        """d sph(v, l, m) / d v: vector-valued; with `component` (the derived kernels' form,
        mtdsl/ir/passes/terms.py), its component of that index."""
        if component is not None:
            vector = self._call_d_sph(expr, v, l, m)
            axes = tuple(a for a in union_axes(vector, component) if a != VECTOR_AXIS)
            index = np.asarray(component.expand(axes), dtype=np.int64)
            data = xp.take_last(xp.expand(vector, axes + (VECTOR_AXIS,)), index)
            return Named(axes, data, merge_missing(vector, component))
        if VECTOR_AXIS not in v.axes:
            raise RunError("d_sph() needs a vector as its first argument")
        l_max = int(np.max(l.data)) if l.data.size else 0
        points = v.data.reshape(-1, 3)
        _, grads = numpy_spherical_harmonics(points, max(l_max, 0), convention=self.convention, gradients=True)
        grads = np.moveaxis(grads, 1, -1)  # [points, lm, xyz]
        grads = grads.reshape(v.data.shape[:-1] + grads.shape[1:]).astype(self.bindings.dtype, copy=False)
        point_axes = v.axes[:-1]
        lm_axes = union_axes(l, m)
        ll, mm = np.broadcast_arrays(l.expand(lm_axes), m.expand(lm_axes))
        valid = (np.abs(mm) <= ll) & (ll >= 0)
        column = np.where(valid, ll * ll + ll + mm, 0)
        gathered = grads[..., column, :] * valid[..., None]
        return Named(point_axes + lm_axes + (VECTOR_AXIS,), gathered, merge_missing(v, l, m))

    def _call_d_soap_radial(self, expr, r, n, l):
        """d soap_radial(r, n, l) / d r."""
        n_radial = int(expr.option("n_radial"))
        cutoff = float(expr.option("cutoff"))
        width = float(expr.option("density_width"))
        l_max = int(np.max(l.data)) if l.data.size else 0
        spline = soap_radial_spline(max(l_max, 0), n_radial, cutoff, width)
        _, table = spline.evaluate(r.data.reshape(-1), derivative=True)
        table = table.reshape(r.data.shape + (spline.max_angular + 1, n_radial))
        nl_axes = union_axes(n, l)
        nn, ll = np.broadcast_arrays(n.expand(nl_axes), l.expand(nl_axes))
        data = table[..., ll, nn].astype(self.bindings.dtype, copy=False)
        return Named(r.axes + nl_axes, data, merge_missing(r, n, l))

    def _call_d_cosine_cutoff(self, expr, r):
        """d cosine_cutoff(r) / d r."""
        cutoff, width = float(expr.option("cutoff")), float(expr.option("width"))
        return apply(lambda rr: math_functions.cosine_cutoff(rr, cutoff, width, derivative=True)[1], r)

    def _call_d_gto(self, expr, r, n):
        """d gto(r, n) / d r = (n r^(n-1) - r^(n+1) / w^2) exp(-r^2 / (2 w^2))."""
        width = float(expr.option("width"))

        def derivative(rr, nn):
            lower = np.where(nn > 0, nn * rr ** np.maximum(nn - 1, 0), 0.0)
            return (lower - rr ** (nn + 1) / (width * width)) * np.exp(-(rr * rr) / (2.0 * width * width))

        return apply(derivative, r, n)


def _reduce_vector(value: Named, function) -> Named:
    if VECTOR_AXIS not in value.axes:
        raise RunError("norm() and dot() need vector arguments")
    axes = tuple(a for a in value.axes if a != VECTOR_AXIS)
    return Named(axes, function(xp.expand(value, axes + (VECTOR_AXIS,))), value.missing)


# ---- the tables in torch --------------------------------------------------------------------------------


def cosine_cutoff(r, cutoff: float, width: float):
    """mtdsl.math.functions.cosine_cutoff in torch."""
    import torch

    inside = (r > cutoff - width) & (r < cutoff)
    s = math.pi * (r - cutoff + width) / width
    smooth = 0.5 * (1.0 + torch.cos(torch.where(inside, s, torch.zeros_like(s))))
    return torch.where(r <= cutoff - width, torch.ones_like(r), torch.where(inside, smooth, torch.zeros_like(r)))


def spherical_harmonics(vectors, l_max: int, convention: str = "metatensor"):
    """mtdsl.math.sph.spherical_harmonics in torch: `[n, (l_max + 1)^2]`, differentiable to every order."""
    import torch

    squared = torch.sum(vectors * vectors, dim=1)
    nonzero = squared > 0.0
    # (the square root of ones where the vector is zero: no infinite derivative to mask)
    safe = torch.sqrt(torch.where(nonzero, squared, torch.ones_like(squared)))
    u = vectors / safe[:, None]
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    c, s, q = recurrences(x, y, z, l_max, torch.ones_like(x), torch.zeros_like(x))
    columns = []
    for l in range(l_max + 1):
        row = [None] * (2 * l + 1)
        for m in range(0, l + 1):
            norm = _normalization(l, m)
            if m == 0:
                row[l] = norm * q[l][0]
            else:
                row[l + m] = norm * q[l][m] * c[m]
                row[l - m] = norm * q[l][m] * s[m]
        if l > 0:
            row = [torch.where(nonzero, value, torch.zeros_like(value)) for value in row]
        block = torch.stack(row, dim=1)
        if convention == "e3nn":
            block = block @ xp.from_numpy(e3nn_change_of_basis(l).T).to(block.dtype)
        columns.append(block)
    return torch.cat(columns, dim=1)


def radial_spline(spline, r):
    """`RadialSpline.evaluate(r)` in torch: `[len(r), max_angular + 1, n_radial]`, the cubic Hermite
    table (distances beyond the cutoff, which pairs never have, extend the last interval)."""
    import torch

    dtype = r.dtype
    values = xp.from_numpy(spline.values).to(dtype)
    derivatives = xp.from_numpy(spline.derivatives).to(dtype) * spline.step
    x = r / spline.step
    k = torch.clamp(torch.floor(x.detach()).to(torch.int64), 0, spline.n_intervals - 1)
    t = (x - k.to(dtype))[:, None, None]
    t2 = t * t
    t3 = t2 * t
    p0, p1 = values[k], values[k + 1]
    m0, m1 = derivatives[k], derivatives[k + 1]
    return (2 * t3 - 3 * t2 + 1) * p0 + (t3 - 2 * t2 + t) * m0 + (-2 * t3 + 3 * t2) * p1 + (t3 - t2) * m1
