"""`Model`: a compiled `.mt` program, called on atomic systems.

`model(frames, gradients=[...], h=features)` binds the frames to the systems
input, computes the neighbour lists, checks the input TensorMaps against their
declared signatures, runs the kernels with the chosen backend and returns the
outputs as `{name: TensorMap}`, each with its provenance in `info`.
"""

from __future__ import annotations

import numpy as np

from mtdsl.errors import MtdslError
from mtdsl.ir import nodes as ir
from mtdsl.ir.autodiff import module_gradients
from mtdsl.provenance import append_provenance, make_record, package_versions
from mtdsl.systems import as_batch, neighbors
from mtdsl.tensor import TensorMap

from .assemble import evaluate_kernel
from .bindings import Bindings, RunError
from .gradients import compute_gradients
from .interpreter import Interpreter

BACKENDS = ("interpreter", "cpp", "llvm")


def initial_parameters(module: ir.Module, seed: int = 0) -> dict[str, np.ndarray]:
    """Parameter arrays drawn from each `param`'s initializer, deterministically from `seed`."""
    rng = np.random.default_rng(seed)
    params = {}
    for param in module.params:
        shape = tuple(_domain_size(d, param.name) for d in param.domains)
        name, args = param.init
        if name == "zeros":
            values = np.zeros(shape)
        elif name == "ones":
            values = np.ones(shape)
        elif name == "constant":
            values = np.full(shape, args[0])
        elif name == "normal":
            mean, std = (args + (0.0, 1.0)[len(args):]) if len(args) < 2 else args
            values = rng.normal(mean, std, size=shape)
        elif name == "uniform":
            low, high = (args + (0.0, 1.0)[len(args):]) if len(args) < 2 else args
            values = rng.uniform(low, high, size=shape)
        else:
            raise MtdslError(f"parameter {param.name}: unknown initializer {name!r}")
        params[param.name] = values
    return params


def _domain_size(domain, param: str) -> int:
    if isinstance(domain, ir.RangeDomain):
        return max(domain.stop - domain.start, 0)
    if isinstance(domain, ir.SpeciesDomain):
        if domain.fixed is None:
            raise MtdslError(f"parameter {param} is indexed by species: compile with species=[...] (E206)")
        return len(domain.fixed)
    if isinstance(domain, ir.XyzDomain):
        return 3
    raise MtdslError(f"parameter {param} cannot be indexed by {domain}")


class Model:
    """A compiled program: call it on frames to get its outputs."""

    def __init__(self, module: ir.Module, *, backend: str = "interpreter", dtype=np.float64,
                 provenance: dict | None = None, seed: int = 0):
        if backend not in BACKENDS:
            raise MtdslError(f"unknown backend {backend!r}: choose among {list(BACKENDS)}")
        self.module = module
        self.backend = backend
        self.dtype = np.dtype(dtype)
        self.parameters = initial_parameters(module, seed)
        self.provenance = dict(provenance or {})
        # forward-mode gradient kernels of the declared gradients (errors at compile time)
        self.gradient_kernels = module_gradients(module)
        self.threads = None  # native backends: OMP_NUM_THREADS when None
        self._compiled = None

    def __getstate__(self):
        """Pickled without its native code (ctypes handles): rebuilt on first use after loading,
        from the rendering cache when the same version rendered it before."""
        state = dict(self.__dict__)
        state["_compiled"] = None
        return state

    @property
    def compiled(self):
        """The native module of the cpp / llvm backends (runtime/compiled.py), built on first use."""
        if self.backend != "interpreter" and self._compiled is None:
            from .compiled import compile_module

            self._compiled = compile_module(self.module, backend=self.backend, dtype=self.dtype,
                                            gradients=self.gradient_kernels)
        return self._compiled

    @property
    def outputs(self) -> dict[str, tuple[str, ...]]:
        """Output names with the gradients each may be asked for."""
        return {o.name: o.gradients for o in self.module.outputs}

    def to_torch(self):
        """A `torch.nn.Module` over this model: its params trainable, autograd through the kernels
        (runtime/torch_module.py, docs/torch.md)."""
        from .torch_module import TorchModel

        return TorchModel(self)

    def __call__(self, frames, gradients=None, **tensormaps) -> dict[str, TensorMap]:
        gradients = list(gradients or [])
        self._check_gradients(gradients)
        bindings = self.bind(frames, tensormaps)
        if self.compiled is not None:
            self.compiled.run(bindings, threads=self.threads, all_tensors=bool(gradients))
        else:
            interpreter = Interpreter(self.module, bindings)
            for kernel in self.module.kernels:
                bindings.tensors[kernel.name] = evaluate_kernel(interpreter, kernel)
        for wrt in dict.fromkeys(gradients):
            outputs = [o.name for o in self.module.outputs if wrt in o.gradients]
            compute_gradients(self.module, bindings, self.gradient_kernels[wrt], wrt, outputs, native=self.compiled)
        return self._outputs(bindings)

    def bind(self, frames, tensormaps: dict) -> Bindings:
        if len(self.module.systems) != 1:
            raise MtdslError("models with several systems inputs are not supported yet")
        systems_name = self.module.systems[0].name
        batch = as_batch(frames)
        pairs = {p.name: neighbors(batch, p.cutoff, full=p.full) for p in self.module.pairs}
        bindings = Bindings({systems_name: batch}, pairs, self.parameters, dtype=self.dtype.type)
        check_tensormap_inputs(self.module, tensormaps)
        for declaration in self.module.tensormaps:
            bindings.tensors[declaration.name] = tensormaps[declaration.name]
        return bindings

    def _check_gradients(self, gradients: list[str]) -> None:
        for output in self.module.outputs:
            undeclared = [g for g in gradients if g not in output.gradients]
            if undeclared:
                raise MtdslError(
                    f"output {output.name} declares gradients {list(output.gradients) or 'none'}; "
                    f"cannot compute {undeclared}"
                )

    def _outputs(self, bindings: Bindings) -> dict[str, TensorMap]:
        batch = next(iter(bindings.systems.values()))
        inputs = [source for source in batch.sources if source] if hasattr(batch, "sources") else []
        record = make_record("mtdsl.compile", inputs=inputs, backend=self.backend,
                             versions=package_versions(), **self.provenance)
        result = {}
        for output in self.module.outputs:
            tensor = bindings.tensors[output.name]
            append_provenance(tensor, record)
            result[output.name] = tensor
        return result


def check_tensormap_inputs(module: ir.Module, tensormaps: dict, error=MtdslError) -> None:
    """`tensormaps` must be exactly the module's tensormap inputs, each labelled as declared
    (a wrong set of names raises `error`)."""
    declared = {t.name: t for t in module.tensormaps}
    for name in tensormaps:
        if name not in declared:
            raise error(f"unknown input {name!r}: the model's tensormap inputs are {sorted(declared) or 'none'}")
    for name, declaration in declared.items():
        if name not in tensormaps:
            raise error(f"the model needs the tensormap input {name!r} ({name}=TensorMap)")
        check_tensormap_input(declaration, tensormaps[name])


def check_tensormap_input(declaration: ir.TensorMapInput, tensor) -> None:
    """The input's labels must be those its declaration names."""
    where = f"input {declaration.name}"
    if not isinstance(tensor, TensorMap):
        raise RunError(f"{where} must be an mtdsl.TensorMap, got {type(tensor).__name__}")
    if tuple(tensor.keys.names) != declaration.keys:
        raise RunError(f"{where}: keys are {tensor.keys.names}, the model declares {list(declaration.keys)}")
    for index, block in enumerate(tensor.blocks()):
        key = ", ".join(f"{n}={int(v)}" for n, v in zip(tensor.keys.names, tensor.keys.array[index]))
        for axis, found, expected in (
            ("samples", block.samples.names, declaration.samples),
            ("components", [c.names[0] for c in block.components], declaration.components),
            ("properties", block.properties.names, declaration.properties),
        ):
            if tuple(found) != tuple(expected):
                raise RunError(
                    f"{where}, block ({key}): {axis} are labelled {list(found)}, "
                    f"the model declares {list(expected)}"
                )
