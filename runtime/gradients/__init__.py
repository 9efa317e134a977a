"""Gradient blocks of a model call, forward mode (docs/gradients.md).

`asked` reads which gradient blocks a call asks for (`model(frames, gradients=...)`); `forward`
builds them from the gradient kernels of `mtdsl.ir.passes.autodiff`, term by term, each term a
native term, scatter or fused kernel where the library has it, else its derived term kernel run by
the one reference evaluator (runtime/evaluate/: its gradient reads and row rules) over the term's
scope (`points`), reading the computed gradients as lookup tables (`tables`), a run's state `run`. The
reverse mode, one product per column for per-system outputs, is `runtime/gradients/native_products.py`.
"""
