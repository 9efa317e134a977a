"""Gradient blocks of a model call, forward mode (docs/gradients.md).

`asked` reads which gradient blocks a call asks for (`model(frames, gradients=...)`); `forward`
builds them from the gradient kernels of `mtdsl.ir.passes.autodiff`, term by term, each term a
native term, scatter or fused kernel where the library has it, else run by `interpreter` (the
reference evaluator plus the derivative nodes, computed gradients as lookup tables). The
reverse mode, one product per column for per-system outputs, is `runtime/gradients/native_products.py`.
"""
