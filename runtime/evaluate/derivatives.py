"""The derivative nodes of mtdsl/ir/passes/autodiff.py in the evaluator, and their lowered forms.

`DerivativeNodes` is the part of `Evaluator` that evaluates what the forward-mode
derivative pass adds to a gradient kernel's terms: unit vectors of a direction,
and the labels (`GradLabel`) and values (`GradValue`) of the rows of a computed
tensor's gradient, read from the gradient tables the evaluator is given
(`Evaluator(..., gradients=...)`: `{(tensor, wrt): GradientTable}`,
runtime/gradients/tables.py, filled as a gradient run computes each tensor).
The derived term kernels (mtdsl/ir/passes/terms.py) read the same through typed
roles, which the evaluator reads from the same tables: `Data(GradientRows(T,
wrt), field)` (a row's labels) and `BlockRef(GradientBlocks(T, wrt), ...)` (its
values). Index values and labels are numpy; the values go through `dispatch`,
so a gradient read on torch values stays a torch value.
"""

from __future__ import annotations

import numpy as np

from mtdsl.ir.passes import autodiff as ad

from ..bindings import RunError
from ..named import VECTOR_AXIS, Named, union_axes


class DerivativeNodes:
    """`_eval_UnitVector`, `_eval_GradLabel`, `_eval_GradValue`, and the size of `GradRows`."""

    def gradient_table(self, tensor: str, wrt: str):
        """The gradient rows of computed tensor `tensor` w.r.t. `wrt` (a `GradientTable`)."""
        table = (self.gradients or {}).get((tensor, wrt))
        if table is None:
            raise RunError(f"the gradient of {tensor} w.r.t. {wrt} is read before it is computed")
        return table

    def domain_values(self, domain) -> np.ndarray:
        """The values an index of `domain` takes: the bindings', and the rows of a gradient."""
        if isinstance(domain, ad.GradRows):
            return np.arange(self.gradient_table(domain.tensor, domain.wrt).n_rows, dtype=np.int64)
        return self.bindings.domain_values(domain)

    def _eval_UnitVector(self, expr: ad.UnitVector, scope) -> Named:
        direction = self.evaluate(expr.direction, scope)
        eye = np.eye(3, dtype=self.bindings.dtype)
        return Named(direction.axes + (VECTOR_AXIS,), eye[direction.data])

    def _eval_GradLabel(self, expr: ad.GradLabel, scope) -> Named:
        row = self.evaluate(expr.row, scope)
        table = self.gradient_table(expr.tensor, expr.wrt)
        return Named(row.axes, table.label(expr, row.data))

    def _eval_GradValue(self, expr: ad.GradValue, scope) -> Named:
        table = self.gradient_table(expr.tensor, expr.wrt)
        row = self.evaluate(expr.row, scope)
        directions = [self.evaluate(d, scope) for d in expr.directions]
        components = [self.evaluate(s.expr, scope) for s in expr.components]
        properties = [self.evaluate(s.expr, scope) for s in expr.properties]
        return table.gather(row, directions, components, properties)

    # -- the lowered forms the derived kernels read (mtdsl/ir/passes/terms.py) --------------------
    def gradient_rows_field(self, expr, scope) -> Named:
        """`Data(GradientRows(T, wrt), field, (row,))`: an integer label of gradient rows (`GradLabel`)."""
        row = self.evaluate(expr.index[0], scope)
        table = self.gradient_table(expr.source.tensor, expr.source.wrt)
        return Named(row.axes, table.row_field(expr.field, row.data))

    def gradient_blocks_read(self, expr, scope) -> Named:
        """`BlockRef(GradientBlocks(T, wrt), ...)`: T's gradient values (`GradValue`) at key `block`,
        sample the row in its block, components the directions in their stored order then T's."""
        table = self.gradient_table(expr.tensor.tensor, expr.tensor.wrt)
        block = self.evaluate(expr.keys[0][1], scope)
        local = self.evaluate(expr.samples[0].expr, scope)
        axes = union_axes(block, local)
        row = Named(axes, table.first_row[block.expand(axes)] + local.expand(axes))
        order = table.order  # direction k of the gradient is stored at component order[k]
        stored = [self.evaluate(s.expr, scope) for s in expr.components[:len(order)]]
        directions = [stored[order[k]] for k in range(len(order))]
        components = [self.evaluate(s.expr, scope) for s in expr.components[len(order):]]
        properties = [self.evaluate(s.expr, scope) for s in expr.properties]
        return table.gather(row, directions, components, properties)
