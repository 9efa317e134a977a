"""The torch bridge, `model.to_torch()` (docs/torch.md): a `torch.nn.Module` differentiable by
torch autograd through the compiled kernels.

`module` holds the `torch.nn.Module` and its custom ops (`mtdsl::evaluate` and the gradient
blocks' op); `descriptors` computes the structural part of a model (the tensors that are
functions of the systems alone) with the model's backend and its native products, which
`descriptor_functions` wraps as torch autograd functions. The rest of the program is evaluated
on torch values by the one evaluator (`runtime/evaluate/torch_values.py`). Every module here
imports torch at its top: `Model.to_torch` imports `module` on first use.
"""
