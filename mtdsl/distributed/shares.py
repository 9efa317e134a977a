"""A domain's share of the per-system outputs: the sum over atoms restricted to its owned atoms.

A per-system output such as an energy, `E[s] = sum(i in atoms(S) where S.system[i] == s) e(i)`,
is computed by a domain that also holds ghost atoms: summed over every atom it would count the
ghosts' (wrong, truncated) terms too. The share module multiplies the body of each such sum by
`mtdsl_owned{_ = 0}[i, 0]`, a tensormap input that is 1 for the domain's owned atoms and 0 for
its ghosts: the domain's shares add up to the whole system's value, and their gradients (the
input is a constant) to its gradient, rows on ghosts included (sent back to their owners).

Only outputs linear in such sums can be split: sums, differences and products by constants of
them. Anything else (a per-system constant, a function of a sum) is refused with its name.
"""

from __future__ import annotations

import dataclasses

from mtdsl.errors import MtdslError
from mtdsl.ir import nodes as ir
from mtdsl.ir.walk import conjuncts

OWNED = "mtdsl_owned"


def kind_of(kernel: ir.TensorKernel) -> str:
    """"atoms" (a sample per atom), "systems" (a sample per system) or "pairs"."""
    domains = [b.domain for b in kernel.indices]
    if any(isinstance(d, ir.PairsDomain) for d in domains):
        return "pairs"
    if any(isinstance(d, ir.AtomsDomain) for d in domains):
        return "atoms"
    if any(isinstance(d, ir.SystemsDomain) for d in domains):
        return "systems"
    return "constant"


def output_kinds(module: ir.Module) -> dict[str, str]:
    kinds = {}
    for output in module.outputs:
        kind = kind_of(module.kernel(output.name))
        if kind not in ("atoms", "systems"):
            raise MtdslError(f"output {output.name} has a sample per {'pair' if kind == 'pairs' else kind}: "
                             "run_domains splits outputs per atom and per system only")
        kinds[output.name] = kind
    return kinds


def share_module(module: ir.Module) -> ir.Module:
    """`module` with every per-system output summing its owned atoms only, and the `mtdsl_owned`
    input; `module` itself when it has no per-system output."""
    kinds = output_kinds(module)
    names = [name for name, kind in kinds.items() if kind == "systems"]
    if not names:
        return module
    if any(t.name == OWNED for t in module.tensormaps):
        raise MtdslError(f"the model has an input named {OWNED}, the name run_domains gives the ownership mask")
    replaced = {}
    for name in names:
        kernel = module.kernel(name)
        systems = [b.name for b in kernel.indices if isinstance(b.domain, ir.SystemsDomain)]
        replaced[name] = dataclasses.replace(kernel, body=_masked(kernel.body, systems, name))
    kernels = tuple(replaced.get(k.name, k) for k in module.kernels)
    fused = tuple(dataclasses.replace(f, kernels=tuple(replaced.get(k.name, k) for k in f.kernels))
                  for f in module.fused)
    mask = ir.TensorMapInput(OWNED, keys=("_",), samples=("system", "atom"), components=(), properties=("owned",))
    return dataclasses.replace(module, tensormaps=module.tensormaps + (mask,), kernels=kernels, fused=fused)


def _masked(expr, systems: list[str], output: str):
    """`expr` with each per-system sum over atoms weighted by ownership (module docstring)."""
    if isinstance(expr, ir.Reduce):
        atom = _system_atom(expr, systems)
        if atom is not None:
            weight = ir.BlockRef(OWNED, (("_", ir.Const(0)),), (ir.Slot("atoms", ir.Var(atom.name), atom.domain.systems),),
                                 (), (ir.Slot("value", ir.Const(0)),))
            return dataclasses.replace(expr, body=ir.Binary("mul", expr.body, weight))
    if isinstance(expr, ir.Binary) and expr.op in ("add", "sub"):
        return ir.Binary(expr.op, _masked(expr.left, systems, output), _masked(expr.right, systems, output))
    if isinstance(expr, ir.Unary) and expr.op == "neg":
        return ir.Unary("neg", _masked(expr.operand, systems, output))
    if isinstance(expr, ir.Binary) and expr.op in ("mul", "div"):
        if _constant(expr.right):
            return ir.Binary(expr.op, _masked(expr.left, systems, output), expr.right)
        if expr.op == "mul" and _constant(expr.left):
            return ir.Binary("mul", expr.left, _masked(expr.right, systems, output))
    raise MtdslError(f"output {output} is not a sum over the atoms of each system (found `{expr}`): "
                     "run_domains cannot split it into per-domain shares")


def _system_atom(reduce: ir.Reduce, systems: list[str]):
    """The binder over atoms that `reduce` restricts to one of the kernel's systems, if any."""
    for binder in reduce.binders:
        if not isinstance(binder.domain, ir.AtomsDomain):
            continue
        for condition in conjuncts(reduce.where):
            if isinstance(condition, ir.Binary) and condition.op == "eq":
                for side, other in ((condition.left, condition.right), (condition.right, condition.left)):
                    if (isinstance(side, ir.Data) and side.field == "system" and side.index == (ir.Var(binder.name),)
                            and isinstance(other, ir.Var) and other.name in systems):
                        return binder
    return None


def _constant(expr) -> bool:
    """Whether `expr` is the same for every atom of a system: constants and params at constant
    indices only."""
    if isinstance(expr, ir.Const):
        return True
    if isinstance(expr, ir.ParamRef):
        return all(_constant(i) for i in expr.index)
    if isinstance(expr, ir.Unary):
        return _constant(expr.operand)
    if isinstance(expr, ir.Binary):
        return _constant(expr.left) and _constant(expr.right)
    return False
