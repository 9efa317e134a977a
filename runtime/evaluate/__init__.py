"""The one reference evaluator of the loop IR, over numpy or torch values.

- `evaluator.py`: `Evaluator`, the walk of the IR (reads, arithmetic, reductions), and
  `Scope`; a numpy run of it is the reference interpreter the compiled backends are
  tested against;
- `builtins.py`: the built-in functions, written once;
- `dispatch.py`: the array operations both are written with, each for numpy or torch
  (metatensor-operations' `_dispatch` pattern): numpy runs never import torch;
- `torch_values.py`: the evaluation on torch values (`Model.to_torch()`'s derivatives of
  every order), imported only by the torch bridge.

`runtime/gradient_interpreter.py` extends `Evaluator` with the derivative nodes of
`mtdsl.ir.passes.autodiff`; `runtime/assemble.py` turns a kernel's values into a TensorMap. (Nothing is imported
here: `runtime/blocks.py`, below the evaluator, reads values through `dispatch`.)
"""
