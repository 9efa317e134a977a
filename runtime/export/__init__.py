"""The metatomic export, `model.export(path)` (docs/simulation.md, "Export to metatomic engines").

`atomistic` writes the `AtomisticModel`; it calls the model's C++ operator (`cpp`: the `tape` of
the kernel calls recorded at export, compiled into a libtorch extension that `native_module`
calls) or, for the programs the tape refuses, the Python-hosted operator (`ops`) that `module`
calls. `outputs` is the TorchScript the two modules share. Every module but `atomistic` and
`tape` imports torch or metatomic, and is imported on first use.
"""
