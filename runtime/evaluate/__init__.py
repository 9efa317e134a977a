"""The one reference evaluator of the loop IR, over numpy or torch values.

- `evaluator.py`: `Evaluator`, the walk of the IR (reads, arithmetic, reductions), and
  `Scope`; a numpy run of it is the reference interpreter the compiled backends are
  tested against;
- `builtins.py`: the built-in functions, written once;
- `derivatives.py`: the gradient reads of a gradient run (the derived term kernels' typed
  roles, a term's `GradLabel`s and `GradRows` ranges: the labels and values of computed
  tensors' gradient rows, read from the gradient tables the evaluator is given);
- `rows.py`: the rules for expressions over the rows of gradients (`over_rows`: block reads
  and sums deduplicated by distinct row values, ragged `P.from(atom)` segments), which the
  gradient terms use;
- `dispatch.py`: the array operations all are written with, each for numpy or torch
  (metatensor-operations' `_dispatch` pattern): numpy runs never import torch;
- `torch_values.py`: the evaluation on torch values (`Model.to_torch()`'s derivatives of
  every order), imported only by the torch bridge.

`runtime/gradients/forward.py` evaluates gradient terms with it (no subclass: the
gradient tables are run-time state it is given); `runtime/assemble.py` turns a kernel's
values into a TensorMap. (Nothing is imported
here: `runtime/blocks.py`, below the evaluator, reads values through `dispatch`.)
"""
