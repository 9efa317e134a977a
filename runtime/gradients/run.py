"""The state of one forward-mode gradient run (`runtime/gradients/forward.py` builds the blocks with it)."""

from __future__ import annotations

from mtdsl.errors import RunError, Unsupported
from mtdsl.ir import nodes as ir
from mtdsl.ir.derivative_nodes import GradientKernel
from mtdsl.ir.passes.terms import term_kernel

from ..evaluate.evaluator import Evaluator


class GradientRun:
    """What one forward-mode gradient run keeps: the gradient tables of the tensors done so far
    (`{(tensor, wrt): GradientTable}`, which later terms read), the evaluator of the terms (over
    gradient rows, reading those tables), and the native side: the compiled module whose term,
    scatter and fused kernels run where it has them, what ran natively, the buffers its scatter
    kernels filled, and the rows the values' pass prepared (`FusedGradients`)."""

    def __init__(self, module: ir.Module, bindings, native=None):
        self.module = module
        self.bindings = bindings
        self.gradient_tables: dict = {}
        self.evaluator = Evaluator(module, bindings, gradients=self.gradient_tables, over_rows=True)
        # a compiled module (runtime/native/compiled.py) whose `gradient_term` fills terms natively, or None
        self.native = native
        self.native_terms: list = []  # ((kernel, wrt, term index), "fused" | "scatter" | "term") run natively
        self.dense_gradients: dict = {}  # (tensor, wrt) -> buffer written by its scatter kernels
        self.prepared: dict = {}  # tensor -> GradientRows some of whose terms the values' pass added
        self._term_kernels: dict = {}

    def term_kernel(self, kernel: ir.TensorKernel, gradient: GradientKernel, k: int) -> ir.TensorKernel:
        """Term `k` of `gradient` as its derived kernel (mtdsl/ir/passes/terms.py, reading the gradient
        blocks), which the evaluator runs. Every term the derivative pass makes has one (the lowering
        covers every vector shape of the language); one without is an error naming the term."""
        key = (kernel.name, gradient.wrt, k)
        if key not in self._term_kernels:
            try:
                self._term_kernels[key] = term_kernel(self.module, kernel, gradient, k, gradient.terms[k],
                                                      dense_reads=False)
            except Unsupported as error:
                raise RunError(f"the gradient of {kernel.name} with respect to {gradient.wrt}: term {k} "
                               f"({gradient.terms[k]}) has no derived kernel: {error}") from None
        return self._term_kernels[key]
