"""parse -> deparse -> parse gives the same syntax tree (spans excluded)."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings, strategies as st

from mtdsl.lang import ast, deparse, parse
from mtdsl.lang.parse import parse_expression

from .conftest import EXAMPLES
from .test_examples import REFERENCE

KEYWORDS = {
    "model", "use", "hyper", "input", "pairs", "dim", "index", "param", "let", "tensor", "output",
    "convention", "keys", "samples", "components", "properties", "where", "sum", "in", "with", "gradients",
    "and", "or", "not", "true", "false",
}

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
idents = names.map(ast.Ident)
leaves = st.one_of(
    st.integers(min_value=0, max_value=2**63 - 1).map(ast.IntLit),
    st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(ast.FloatLit),
    st.booleans().map(ast.BoolLit),
    st.text(alphabet=string.ascii_letters + ' "\\\n\t#', max_size=6).map(ast.StrLit),
    names.map(ast.Name),
)


def _extend(children):
    small = st.lists(children, min_size=0, max_size=3).map(tuple)
    return st.one_of(
        children.map(ast.Neg),
        children.map(ast.Not),
        st.builds(ast.BinOp, st.sampled_from(["+", "-", "*", "/", "%", "^"]), children, children),
        st.builds(ast.Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), children, children),
        st.builds(ast.Logical, st.sampled_from(["and", "or"]), children, children),
        st.builds(ast.Ternary, children, children, children),
        st.builds(ast.Sum,
                  st.lists(st.builds(ast.Binder, idents, st.none() | children), min_size=1, max_size=3).map(tuple),
                  st.none() | children, children),
        st.builds(ast.Call, names.map(ast.Name) | st.builds(ast.Attribute, names.map(ast.Name), idents), small,
                  st.lists(st.builds(ast.KeywordArg, idents, children), max_size=2).map(tuple)),
        st.builds(ast.Subscript, names.map(ast.Name), small),
        st.builds(ast.Attribute, names.map(ast.Name), idents),
        st.builds(ast.BlockAccess, names.map(ast.Name),
                  st.lists(st.builds(ast.KeyBinding, idents, children), max_size=2).map(tuple), small),
    )


expressions = st.recursive(leaves, _extend, max_leaves=12)

entries = st.lists(st.builds(ast.Entry, idents, st.none() | expressions), max_size=3).map(tuple)
signatures = st.builds(ast.Signature, st.none() | entries, st.none() | entries, st.none() | entries,
                       st.none() | entries)
hyper_literals = st.one_of(
    st.integers(min_value=0, max_value=2**40).map(ast.IntLit),
    st.integers(min_value=1, max_value=2**40).map(lambda v: ast.Neg(ast.IntLit(v))),
    st.floats(min_value=0, max_value=1e6, allow_nan=False).map(ast.FloatLit),
    st.booleans().map(ast.BoolLit),
    st.lists(st.integers(min_value=0, max_value=9).map(ast.IntLit), max_size=3).map(lambda v: ast.ListLit(tuple(v))),
)
name_tuples = st.lists(idents, min_size=1, max_size=3).map(tuple)
statements = st.one_of(
    st.builds(ast.ModelStmt, idents),
    st.builds(ast.UseStmt, st.text(alphabet=string.ascii_letters + "./", max_size=8).map(ast.StrLit)),
    st.builds(ast.HyperStmt, idents, hyper_literals),
    st.builds(ast.InputStmt, idents, st.sampled_from(["systems", "tensormap"]).map(ast.Ident), signatures),
    st.builds(ast.PairsStmt, idents, expressions),
    st.builds(ast.DimStmt, idents, expressions),
    st.builds(ast.IndexStmt, name_tuples, expressions),
    st.builds(ast.ParamStmt, idents, st.none() | st.lists(idents, max_size=3).map(tuple), expressions),
    st.builds(ast.LetStmt, idents, st.none() | st.lists(idents, max_size=3).map(tuple), expressions),
    st.builds(ast.TensorStmt, idents, signatures, st.none() | expressions, expressions),
    st.builds(ast.OutputStmt, st.lists(st.builds(ast.OutputItem, idents, st.none() | name_tuples),
                                       min_size=1, max_size=2).map(tuple)),
    st.builds(ast.ConventionStmt, idents, st.sampled_from(["metatensor", "e3nn"]).map(ast.StrLit)),
)
modules = st.lists(statements, max_size=5).map(lambda s: ast.Module("gen.mt", tuple(s)))

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(expressions)
def test_expression_round_trip(expr):
    text = deparse(expr)
    assert parse_expression(text) == expr, text


@SETTINGS
@given(modules)
def test_module_round_trip(module):
    text = deparse(module)
    assert parse(text, "gen.mt") == module, text


def test_reference_programs_round_trip_and_fmt_is_idempotent():
    for name in REFERENCE:
        text = (EXAMPLES / name).read_text()
        module = parse(text, name)
        printed = deparse(module)
        assert parse(printed, name) == module
        assert deparse(parse(printed, name)) == printed


def test_deparse_parenthesizes_only_where_needed():
    assert deparse(parse_expression("(-1.0)^l / sqrt(2.0 * l + 1.0)")) == "(-1.0) ^ l / sqrt(2.0 * l + 1.0)"
    assert deparse(parse_expression("a * (sum(m) b) + c")) == "a * (sum(m) b) + c"
    assert deparse(parse_expression("a * sum(m) b + c")) == "a * sum(m) b + c"
    assert deparse(parse_expression("(a + b) * c")) == "(a + b) * c"
