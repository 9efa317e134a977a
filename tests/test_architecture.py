"""The layers of mtdsl, measured on the source tree (docs/architecture.md says why each rule).

The project's import graph is read with `ast` from every source module, imports inside
functions included, and checked for:

- no cycle between project modules;
- no function-local import of a project module, except of a module whose top imports torch
  or an optional package (the torch bridge, the Dask / JAX / PyG bridges): importing it is
  the feature's cost, paid on first use, and `import mtdsl` stays free of torch;
- each package importing only the layers below it (`LAYERS`);
- no source module over 1,000 lines, but the few listed in `KNOWN_LONG`, each to be split.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent

#: third-party packages that are optional, or (torch) heavy at import: a project module importing
#: one at its top may itself be imported inside the function that needs it
LAZY_PACKAGES = {
    "torch", "dask", "distributed", "jax", "jaxlib", "torch_geometric", "metatomic", "metatensor",
    "zarr", "featomic", "e3nn", "sphericart", "matplotlib",
}

_ERRORS = {"mtdsl.errors"}
_DATA = _ERRORS | {"mtdsl._version", "mtdsl.tensor", "mtdsl.math", "mtdsl.systems", "mtdsl.io", "mtdsl.ops",
                   "mtdsl.provenance"}
#: what each part may import besides itself (the longest matching prefix decides). A module
#: not listed (a new top-level feature, `mtdsl/distributed.py`, ...) may import any project
#: module, and none listed here may import it, so it sits above them all; unless it imports
#: nothing of mtdsl but the errors (a utility such as atomic file writing): then it sits at
#: the bottom, and anything may import it.
LAYERS = {
    "mtdsl.errors": set(),
    "mtdsl._version": set(),
    # the data model, its mathematics and the language front end know nothing of each other
    "mtdsl.tensor": _ERRORS,
    "mtdsl.math": _ERRORS,
    "mtdsl.lang": _ERRORS | {"mtdsl.builtins"},
    "mtdsl.grammar": set(),
    "mtdsl.provenance": {"mtdsl._version"},
    "mtdsl.systems": _ERRORS | {"mtdsl.tensor"},
    "mtdsl.ops": _ERRORS | {"mtdsl.tensor"},
    "mtdsl.io": _ERRORS | {"mtdsl.tensor", "mtdsl.systems"},
    # the built-ins, one module each (signature, derivative as IR, numpy/torch forms, native form):
    # below everything that treats a built-in by name, above the IR nodes they build and the mathematics
    "mtdsl.builtins": _ERRORS | {"mtdsl.ir.nodes", "mtdsl.math"},
    # the IR is the contract between the front end and the backends: it imports neither...
    "mtdsl.ir": _ERRORS,
    # ...but the bridges from the checked program to the IR: lowering, and the check that the
    # gradients a program declares can be taken (its findings are the front end's diagnostics)
    "mtdsl.ir.lower": _ERRORS | {"mtdsl.ir", "mtdsl.lang", "mtdsl.builtins"},
    "mtdsl.ir.differentiable": _ERRORS | {"mtdsl.ir", "mtdsl.lang"},
    # the derivative passes take IR and give IR (their roles as types): the IR and the errors only
    # (`derivative_nodes`: what autodiff gives and the others read; `walk`: the children, variables
    # and conjuncts of an expression, plain or derivative, facts of the nodes alone)
    "mtdsl.ir.passes": _ERRORS | {"mtdsl.ir.nodes", "mtdsl.ir.derivative_nodes", "mtdsl.ir.roles", "mtdsl.ir.walk",
                                  "mtdsl.builtins"},
    # the verifier checks every stage's IR (and refuses the derivative nodes in it), so no pass may need it
    "mtdsl.ir.verify": _ERRORS | {"mtdsl.ir.nodes", "mtdsl.ir.derivative_nodes", "mtdsl.ir.roles", "mtdsl.builtins"},
    # backends render the IR; they never import the runtime that runs what they build
    "mtdsl.codegen": _ERRORS | {"mtdsl.ir", "mtdsl.math", "mtdsl.builtins"},
    # the runtime binds data to kernels: never the language, the compiler driver or the CLI
    "mtdsl.runtime": _DATA | {"mtdsl.ir", "mtdsl.codegen", "mtdsl.builtins"},
    "mtdsl.testing": _DATA | {"mtdsl.ir"},
    "mtdsl.compile": _ERRORS | {"mtdsl.lang", "mtdsl.ir", "mtdsl.runtime"},
    "mtdsl.cli.base": _ERRORS,
}


def _packages() -> dict[str, pathlib.Path]:
    """Import name -> folder of each top-level source folder (pyproject's `package-dir`)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name: ROOT / folder for name, folder in config["package-dir"].items()}


def source_modules() -> dict[str, pathlib.Path]:
    roots = _packages()
    modules = {}
    for name, folder in roots.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([name, *parts])] = path
    return modules


def _resolve(name: str, modules) -> str | None:
    """The project module `name` is or lies in (`mtdsl.tensor.Labels` -> `mtdsl.tensor`)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


class _Imports(ast.NodeVisitor):
    """Every import of a module: `(line, target name, imported names, inside a function)`."""

    def __init__(self, module: str, is_package: bool):
        self.base = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[int, str, tuple[str, ...], bool]] = []
        self.depth = 0

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node):
        for alias in node.names:
            self.found.append((node.lineno, alias.name, (), self.depth > 0))

    def visit_ImportFrom(self, node):
        if node.level:
            parts = self.base.split(".")
            parts = parts[: len(parts) - (node.level - 1)]
            target = ".".join(parts + ([node.module] if node.module else []))
        else:
            target = node.module
        self.found.append((node.lineno, target, tuple(a.name for a in node.names), self.depth > 0))


def import_graph():
    """`(modules, edges, local)`: the project modules, `{module: {imported module: line}}` with
    function-local imports included, and the function-local imports `(module, line, target)`
    of project modules. A name imported from a package counts as its submodule when it is one."""
    modules = source_modules()
    edges: dict[str, dict[str, int]] = {m: {} for m in modules}
    local, third_party_top = [], {m: set() for m in modules}
    for module, path in modules.items():
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(), str(path)))
        for line, target, names, in_function in visitor.found:
            targets = [_resolve(f"{target}.{n}", modules) for n in names] or [_resolve(target, modules)]
            project = {t for t in targets if t is not None}
            if not project:
                if not in_function:
                    third_party_top[module].add(target.partition(".")[0])
                continue
            for found in project - {module}:
                edges[module].setdefault(found, line)
                if in_function:
                    local.append((module, line, found))
    lazy = {m for m, packages in third_party_top.items() if packages & LAZY_PACKAGES}
    return modules, edges, local, lazy


def _cycles(edges) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        result.append(sorted(component))
    return result


def _rule(module: str):
    """The `LAYERS` entry of `module` (its longest listed prefix), or None when not listed."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in LAYERS:
            return name
    return None


def _within(target: str, allowed) -> bool:
    return any(target == a or target.startswith(a + ".") for a in allowed)


def _shortest_cycle(component: list[str], edges) -> list[str]:
    """A shortest cycle through the first module of a strongly connected `component` (breadth first)."""
    inside, start = set(component), component[0]
    parents, queue = {start: None}, [start]
    for node in queue:
        for child in sorted(edges[node]):
            if child == start:
                path = [node]  # back to `start` through the parents, then forwards
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])
                return path[::-1] + [start]
            if child in inside and child not in parents:
                parents[child] = node
                queue.append(child)
    return component


def test_no_import_cycle():
    modules, edges, _, _ = import_graph()
    cycles = _cycles(edges)
    described = []
    for component in cycles:
        cycle = _shortest_cycle(component, edges)
        lines = [f"  {a} -> {b} ({modules[a].relative_to(ROOT)}:{edges[a][b]})" for a, b in zip(cycle, cycle[1:])]
        described.append(f"{len(component)} modules in a cycle, among them:\n" + "\n".join(lines))
    assert not cycles, ("import cycles between project modules (move the shared code to a lower "
                        "module, docs/architecture.md):\n" + "\n\n".join(described))


def test_no_function_local_import_of_a_project_module():
    modules, _, local, lazy = import_graph()
    wrong = [f"  {modules[m].relative_to(ROOT)}:{line}: imports {target}"
             for m, line, target in local if target not in lazy]
    assert not wrong, ("function-local imports of project modules hide cycles; import at the top "
                       "(only modules importing torch or an optional package may load lazily):\n"
                       + "\n".join(wrong))


def test_layers():
    modules, edges, _, _ = import_graph()
    utilities = {m for m in modules if _rule(m) is None and set(edges[m]) <= _ERRORS | {"mtdsl._version"}}
    wrong = []
    for module, targets in edges.items():
        rule = _rule(module)
        if rule is None:
            continue
        allowed = LAYERS[rule] | {rule}
        for target, line in sorted(targets.items()):
            if not _within(target, allowed) and target not in utilities:
                wrong.append(f"  {modules[module].relative_to(ROOT)}:{line}: {module} imports {target}")
    assert not wrong, ("imports across the layers (LAYERS above, docs/architecture.md):\n" + "\n".join(wrong))


#: the runtime's ways out of a call, on top of the call itself: the torch bridge, the JAX function and
#: the ASE calculator, the metatomic export. `Model` (runtime/model.py) reaches them; nothing else of
#: the runtime does, so the call (bindings, evaluate/, compiled, assemble, gradients/) reads alone
RUNTIME_WAYS_OUT = ("mtdsl.runtime.torch", "mtdsl.runtime.bridges", "mtdsl.runtime.export")


def test_the_runtime_core_never_imports_its_ways_out():
    modules, edges, _, _ = import_graph()
    assert all(any(m.startswith(w + ".") for m in modules) for w in RUNTIME_WAYS_OUT)
    wrong = []
    for module, targets in edges.items():
        if not module.startswith("mtdsl.runtime.") or module == "mtdsl.runtime.model" or _within(module, RUNTIME_WAYS_OUT):
            continue
        wrong += [f"  {modules[module].relative_to(ROOT)}:{line}: {module} imports {target}"
                  for target, line in sorted(targets.items()) if _within(target, RUNTIME_WAYS_OUT)]
    assert not wrong, ("the runtime's core imports a way out (torch/, bridges/, export/: only runtime/model.py "
                       "and the ways out themselves may; docs/architecture.md):\n" + "\n".join(wrong))

def test_the_graph_sees_every_kind_of_import():
    """The reader itself: relative, absolute and function-local imports, names that are modules."""
    modules, edges, local, lazy = import_graph()
    assert "mtdsl.runtime.model" in modules and "mtdsl.codegen.cpp" in modules
    assert "mtdsl.tensor.block" in edges["mtdsl.tensor.tensormap"]  # from .block import TensorBlock
    assert "mtdsl.ir.nodes" in edges["mtdsl.codegen.schedule.plan"]  # from mtdsl.ir import nodes as ir
    assert ("mtdsl.runtime.model", "mtdsl.runtime.torch.module") in {(m, t) for m, _, t in local}
    assert "mtdsl.runtime.torch.module" in lazy and "mtdsl.runtime.model" not in lazy
    edges = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "b": 1}, "d": {"a": 1}}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert _shortest_cycle(["a", "b", "c"], edges) == ["a", "b", "c", "a"]
    assert _shortest_cycle(["b", "c"], edges) == ["b", "c", "b"]


def test_import_mtdsl_loads_no_torch_nor_optional_package():
    code = ("import sys, mtdsl, mtdsl.cli\n"
            f"print(sorted(p for p in {sorted(LAZY_PACKAGES)!r} if p in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


#: source modules over the limit, each to be split (delete its line when it is): the two
#: renderers are the loop-nest IR of issue #15 (their shared middle becomes passes written once,
#: each renderer only prints a loop nest)
MAX_LINES = 1000
KNOWN_LONG: set = set()


def test_no_source_module_over_a_thousand_lines():
    modules = source_modules()
    lengths = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in modules.values()}
    long = sorted(f"  {path}: {n} lines" for path, n in lengths.items() if n > MAX_LINES and path not in KNOWN_LONG)
    assert not long, (f"source modules over {MAX_LINES} lines: split each along a seam of what it owns "
                      "(docs/architecture.md):\n" + "\n".join(long))
    shorter = sorted(path for path in KNOWN_LONG if lengths.get(path, 0) <= MAX_LINES)
    assert not shorter, f"no longer over {MAX_LINES} lines (or gone): remove from KNOWN_LONG: {shorter}"


#: what the runtime may import from the code generator: the kernel ABI, the backends' protocol and
#: registry, the cache (issue 15, item 3); and a few more, each with its reason, listed so that none
#: is added unnoticed. Rendering (a kernel of several terms split first: codegen/schedule/parts.py)
#: is the backends' alone, so the runtime never renders, nor prepares a module for rendering
RUNTIME_FROM_CODEGEN = {
    "mtdsl.codegen.schedule.abi", "mtdsl.codegen.backends", "mtdsl.codegen.cache",
    "mtdsl.codegen.threads",  # the native thread pools the runner shares with the LLVM driver
    # the product kernels are scheduled at the call, when the outputs asked are known: the runner
    # asks the middle whether two of them share one pass over the pairs (runtime/gradients/native_products.py)
    "mtdsl.codegen.schedule.fuse",
    "mtdsl.codegen.torch_op",  # the exported operator's C++, a backend product (runtime/export/cpp.py)
}


def test_the_runtime_imports_from_codegen_only_its_abi():
    modules, edges, _, _ = import_graph()
    wrong = [f"  {modules[module].relative_to(ROOT)}:{line}: {module} imports {target}"
             for module, targets in edges.items() if module.startswith("mtdsl.runtime.")
             for target, line in sorted(targets.items())
             if target.startswith("mtdsl.codegen") and target not in RUNTIME_FROM_CODEGEN]
    assert not wrong, ("the runtime binds kernels through the ABI (codegen/schedule/abi.py) and reaches the "
                       "backends through codegen/backends.py:\n" + "\n".join(wrong))
