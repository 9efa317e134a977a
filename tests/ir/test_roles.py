"""The roles of reserved IR names (`mtdsl/ir/roles.py`): one reader, and nobody else spelling them."""

import ast
import pathlib
import re

import pytest

from mtdsl.codegen import products, terms
from mtdsl.codegen.fuse import fused_name
from mtdsl.ir.roles import Role, role_of

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: the renderers still test three prefixes themselves: the loop-nest IR of issue #15 replaces them
RENDERERS = {"codegen/cpp.py", "codegen/llvm.py"}
#: the names under which codegen/terms.py and codegen/fuse.py export the roles' prefixes
ROLE_CONSTANT = re.compile(r"\b(ROWS|GRAD|DENSE|OUT|COTANGENT|TANGENT|TENSOR_TANGENT|FUSED)_PREFIX\b")


@pytest.mark.parametrize("role", list(Role))
def test_every_role_reads_back(role):
    assert role_of(f"{role.prefix}energy·positions·0") is role
    assert role.prefix.startswith("·") and role.prefix.endswith("·")


def test_the_names_the_passes_make_carry_their_role():
    assert role_of(terms.rows_source("ps", "positions")) is Role.ROWS
    assert role_of(terms.dense_source("ps", "cell")) is Role.DENSE
    assert role_of(terms.out_source("ps", "positions", 0)) is Role.OUT
    assert role_of(products.cotangent_tensor("energy")) is Role.COTANGENT
    assert role_of(products.tensor_tangent("ps")) is Role.TENSOR_TANGENT
    assert role_of(fused_name("ps", "positions")) is Role.FUSED
    assert terms.parse_rows_source(terms.rows_source("a·b", "strain")) == ("a·b", "strain")
    assert terms.parse_rows_source(terms.dense_source("a", "strain")) is None


@pytest.mark.parametrize("name", ["energy", "·row", "·da/dpositions#0", "·unknown·x", "", "·"])
def test_other_names_have_no_role(name):
    assert role_of(name) is None


def _sources():
    for folder in ("mtdsl", "codegen", "runtime"):
        for path in (ROOT / folder).rglob("*.py"):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text())


def test_no_module_spells_a_role_but_the_roles_module():
    """A role is asked with `role_of`, never with a literal prefix or a `startswith` of one."""
    spelled = {role.prefix for role in Role}
    found = []
    for path, tree in _sources():
        if path == "mtdsl/ir/roles.py":
            continue
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if any(prefix in node.value for prefix in spelled):
                    found.append(f"{path}:{node.lineno}: {node.value!r}")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "startswith" and path not in RENDERERS):
                argument = ast.unparse(node.args[0]) if node.args else ""
                if ROLE_CONSTANT.search(argument) or "·" in argument:
                    found.append(f"{path}:{node.lineno}: startswith({argument})")
    assert not found, "roles spelled outside mtdsl/ir/roles.py (use role_of):\n" + "\n".join(found)
