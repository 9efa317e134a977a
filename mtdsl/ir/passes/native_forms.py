"""The native forms of built-ins: every call of a built-in with an `expansion` (softplus, sigmoid,
silu, ...: mtdsl/builtins/) replaced by that expansion, recursively, so that the native backends
print only primitives (their fixed tables) and IR operators. Run once on the module a backend
renders, before any renderer sees it (codegen/schedule/module.py `render_kernels`, and
codegen/schedule/lower.py for `--emit nest`); the evaluators keep the calls (their numpy/torch
forms are the built-ins' own).

The rewrite walks every frozen dataclass of the module (kernels, fused kernels, gradient roles),
rebuilding only what changed; a module without such calls comes back as the same object.
"""

from __future__ import annotations

import dataclasses

from mtdsl import builtins

from .. import nodes as ir


def expand_native_forms(module: ir.Module) -> ir.Module:
    """`module` with every built-in that has a native expansion replaced by it."""
    return _Expander().rewrite(module)


class _Expander:
    def __init__(self):
        self.done: dict[int, object] = {}  # id of a node -> its rewrite (shared subtrees once)
        self.keep: list = []  # the nodes whose ids `done` holds, alive while it is used

    def rewrite(self, node):
        key = id(node)
        if key in self.done:
            return self.done[key]
        result = self._rewrite(node)
        self.done[key] = result
        self.keep.append(node)
        return result

    def _rewrite(self, node):
        if isinstance(node, tuple):
            items = tuple(self.rewrite(item) for item in node)
            return node if all(a is b for a, b in zip(items, node)) else items
        if not dataclasses.is_dataclass(node) or isinstance(node, type):
            return node
        changes = {}
        for field in dataclasses.fields(node):
            value = getattr(node, field.name)
            new = self.rewrite(value)
            if new is not value:
                changes[field.name] = new
        if changes:
            node = dataclasses.replace(node, **changes)
        if isinstance(node, ir.Call):
            builtin = builtins.lookup(node.function)
            if builtin is not None and builtin.expansion is not None:
                return self.rewrite(builtin.expansion(*node.args))
        return node
