"""The roles of what the derivative passes add to the IR (`mtdsl/ir/roles.py`): types, read by
type, spelled as names in one module only."""

import ast
import copy
import pathlib
import pickle
import re

import pytest

from mtdsl.codegen import serialize
from mtdsl.codegen.schedule.fuse import fused_name
from mtdsl.ir import roles
from mtdsl.ir.passes import products, terms

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: the constants under which the passes once exported the reserved prefixes
ROLE_CONSTANT = re.compile(r"\b(ROWS|GRAD|DENSE|OUT|COTANGENT|TANGENT|TENSOR_TANGENT|FUSED|SCATTER|VJP|JVP|MASK)_PREFIX\b")

EXAMPLES = [
    roles.GradientRows("ps", "positions"), roles.GradientValues("ps", "cell"), roles.GradientBlocks("a·b", "strain"),
    roles.RowMap("ps", "positions", 0), roles.RowMap("ps", "positions", 1, "vjp"), roles.Cotangent("energy"),
    roles.Tangent("cell"), roles.TensorTangent("ps"), roles.TermKernel("ps", "positions", 2),
    roles.ScatterKernel("ps", "cell", 0), roles.VjpKernel("e", "ps", 1), roles.JvpKernel("e", "positions", 0),
    roles.FusedName("ps"), roles.FusedName("ps", "positions", "terms1"), roles.BinderMask("p"),
    roles.RowField("block"), roles.RowField("key", "center_type"), roles.RowField("sample", 0),
    roles.DenseValues(3, 8, 5), roles.DenseValues(3, 3),
]


@pytest.mark.parametrize("role", EXAMPLES, ids=lambda r: type(r).__name__ + str(r.fields))
def test_a_role_keeps_its_type_and_fields_through_copies_pickles_and_the_cache(role):
    for copied in (copy.copy(role), copy.deepcopy(role), pickle.loads(pickle.dumps(role)),
                   serialize.decode(serialize.encode(role))):
        assert type(copied) is type(role) and copied.fields == role.fields and copied == role
    assert str(role) == role and hash(role) == hash(str(role))  # a name wherever a name is needed


def test_the_passes_make_typed_roles():
    assert isinstance(terms.rows_source("ps", "positions"), roles.GradientRows)
    assert terms.dense_source("ps", "cell").rows == roles.GradientRows("ps", "cell")
    assert isinstance(terms.out_source("ps", "positions", 0), roles.RowMap)
    assert isinstance(products.cotangent_tensor("energy"), roles.Cotangent)
    assert isinstance(products.tensor_tangent("ps"), roles.TensorTangent)
    assert isinstance(fused_name("ps", "positions"), roles.FusedName)
    assert roles.GradientRows("a·b", "strain").tensor == "a·b"  # fields, never parsed back from the name
    # a name that only looks like a role has none: consumers ask the type
    assert not isinstance(str(terms.rows_source("ps", "positions")), roles.RoleName)


def test_a_role_is_refused_with_the_wrong_fields():
    with pytest.raises(TypeError, match="GradientRows takes the fields"):
        roles.GradientRows("ps")
    with pytest.raises(TypeError, match="RowField"):
        roles.RowField("row")
    with pytest.raises(TypeError, match="RowField"):
        roles.RowField("key")  # a key is named
    with pytest.raises(TypeError, match="DenseValues takes the sizes"):
        roles.DenseValues("3,8")


def test_a_row_field_is_read_by_its_fields():
    field = roles.RowField("sample", 1)
    assert (field.kind, field.name, str(field)) == ("sample", 1, "sample:1")
    assert (roles.RowField("key", "o3_lambda").name, str(roles.RowField("target"))) == ("o3_lambda", "target")


def test_dense_values_are_read_by_their_sizes():
    field = roles.DenseValues(3, 8, 5)
    assert (field.sizes, str(field)) == ((3, 8, 5), "value:3,8,5")


def _sources():
    for folder in ("mtdsl", "codegen", "runtime"):
        for path in (ROOT / folder).rglob("*.py"):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text())


def test_no_module_spells_a_role_but_the_roles_module():
    """No string literal (docstrings aside) holds a reserved prefix outside mtdsl/ir/roles.py, and
    no module tests a prefix: roles are asked by type (`isinstance(source, GradientRows)`)."""
    found = []
    for path, tree in _sources():
        if path == "mtdsl/ir/roles.py":
            continue
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if any(prefix in node.value for prefix in roles.PREFIXES):
                    found.append(f"{path}:{node.lineno}: {node.value!r}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith":
                argument = ast.unparse(node.args[0]) if node.args else ""
                if "·" in argument or "SEPARATOR" in argument or "roles." in argument or ROLE_CONSTANT.search(argument):
                    found.append(f"{path}:{node.lineno}: startswith({argument})")
    assert not found, "roles spelled outside mtdsl/ir/roles.py (use its types):\n" + "\n".join(found)
