"""The derivative passes over the IR: each takes IR and gives IR, with the roles of
`mtdsl/ir/roles.py` as types on what it adds.

- `autodiff`: forward-mode derivatives of a module's kernels (`GradientKernel`s of `Term`s,
  with the derivative nodes `GradRows`, `GradLabel`, `GradValue`, `UnitVector`: the derivative
  IR of `mtdsl/ir/derivative_nodes.py`);
- `terms`: a gradient's terms lowered to ordinary kernels (term kernels, scatter kernels
  writing into the gradient's rows: `GradientRows`, `GradientValues`, `GradientBlocks`, `RowMap`);
- `products`: the terms contracted with a cotangent (VJP kernels, `Cotangent`) or a tangent
  (JVP kernels, `Tangent`, `TensorTangent`).

Which derived kernels fuse with the values (`codegen/schedule/fuse.py`, `codegen/schedule/derived.py`) is decided by
the plan and stays in the backends; `runtime/gradients/native_products.py` chooses which product kernels a
call needs. `mtdsl/ir/verify.py` checks what every pass gives.
"""
