"""Executing compiled models, a stage a module or package (docs/architecture.md, "The runtime, stage
by stage"): binding inputs (`bindings`), the reference evaluator (`evaluate/`), the native runner
(`compiled`), the one assembler (`assemble`), gradient blocks (`gradients/`, `native_products`),
`Model` (`model`); the ways out: `torch/`, `bridges/` (JAX, ASE), `export/` (metatomic)."""
