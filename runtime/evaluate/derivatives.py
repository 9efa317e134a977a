"""The gradient reads of a gradient run in the evaluator: the derived term kernels' roles, and a term's labels.

`DerivativeNodes` is the part of `Evaluator` that reads the rows of computed
tensors' gradients from the gradient tables the evaluator is given
(`Evaluator(..., gradients=...)`: `{(tensor, wrt): GradientTable}`,
runtime/gradients/tables.py, filled as a gradient run computes each tensor).
A term's value is its derived term kernel's (mtdsl/ir/passes/terms.py), which
reads them through typed roles: `Data(GradientRows(T, wrt), field)` (a row's
labels) and `BlockRef(GradientBlocks(T, wrt), ...)` (its values). The run
itself evaluates the rest of a term as the derivative pass wrote it: the range
of its `GradRows` binders, and the `GradLabel`s of its target, aliases and
condition (`i := sample of g`). Index values and labels are numpy; the values
go through `dispatch`, so a gradient read on torch values stays a torch value.
(`UnitVector` and `GradValue` have no rule: the lowering to the derived kernel
replaces them by components and block reads.)
"""

from __future__ import annotations

import numpy as np

from mtdsl.ir.derivative_nodes import GradLabel, GradRows

from ..bindings import RunError
from ..named import Named, union_axes


class DerivativeNodes:
    """The lowered gradient reads of the derived kernels, `_eval_GradLabel`, and the size of `GradRows`."""

    def gradient_table(self, tensor: str, wrt: str):
        """The gradient rows of computed tensor `tensor` w.r.t. `wrt` (a `GradientTable`)."""
        table = (self.gradients or {}).get((tensor, wrt))
        if table is None:
            raise RunError(f"the gradient of {tensor} w.r.t. {wrt} is read before it is computed")
        return table

    def domain_values(self, domain) -> np.ndarray:
        """The values an index of `domain` takes: the bindings', and the rows of a gradient."""
        if isinstance(domain, GradRows):
            return np.arange(self.gradient_table(domain.tensor, domain.wrt).n_rows, dtype=np.int64)
        return self.bindings.domain_values(domain)

    def _eval_GradLabel(self, expr: GradLabel, scope) -> Named:
        row = self.evaluate(expr.row, scope)
        table = self.gradient_table(expr.tensor, expr.wrt)
        return Named(row.axes, table.label(expr, row.data))

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
