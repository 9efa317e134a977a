"""The grammar and the parser: shapes of the syntax tree, E001 and E002."""

from __future__ import annotations

import logging

import pytest
from lark import Lark, logger as lark_logger

from mtdsl.lang import ast, parse
from mtdsl.lang.parse import MAX_DEPTH, grammar_text, parse_expression, parse_module

# ---- grammar ---------------------------------------------------------------------------------------


def test_only_the_documented_shift_reduce_conflicts(caplog):
    """Every conflict is a shift/reduce resolved as shift, on an operator token
    after the last operand of a `sum` body (the sum reaches as far right as it can)."""
    lark_logger.setLevel(logging.DEBUG)
    with caplog.at_level(logging.DEBUG, logger="lark"):
        Lark(grammar_text(), parser="lalr", lexer="basic", start=["start", "statement"], debug=True)
    conflicts = [r.getMessage() for r in caplog.records if "conflict" in r.getMessage().lower()]
    assert conflicts, "the sum rule is expected to produce shift/reduce conflicts"
    operators = {"PLUS", "MINUS", "MUL_OP", "COMP_OP", "AND", "OR", "QMARK", "CARET"}
    for message in conflicts:
        assert message.startswith("Shift/Reduce conflict for terminal") and "resolving as shift" in message
        terminal = message.split("terminal ")[1].split(":")[0]
        assert terminal in operators, message


def test_sum_reaches_as_far_right_as_it_can():
    expr = parse_expression("a * sum(m) b * c + d")
    assert expr == ast.BinOp("*", ast.Name("a"), ast.Sum(
        (ast.Binder(ast.Ident("m"), None),), None,
        ast.BinOp("+", ast.BinOp("*", ast.Name("b"), ast.Name("c")), ast.Name("d"))))
    inside_parentheses = parse_expression("(sum(m) b) * c")
    assert isinstance(inside_parentheses, ast.BinOp) and isinstance(inside_parentheses.left, ast.Sum)


def test_precedence_of_power_unary_minus_and_modulo():
    assert parse_expression("-a ^ b") == ast.Neg(ast.BinOp("^", ast.Name("a"), ast.Name("b")))
    assert parse_expression("a ^ b ^ c") == ast.BinOp("^", ast.Name("a"), ast.BinOp("^", ast.Name("b"), ast.Name("c")))
    assert parse_expression("2 ^ -1") == ast.BinOp("^", ast.IntLit(2), ast.Neg(ast.IntLit(1)))
    assert parse_expression("a + b % c") == ast.BinOp("+", ast.Name("a"), ast.BinOp("%", ast.Name("b"), ast.Name("c")))
    assert parse_expression("not a < b and c or d") == ast.Logical(
        "or", ast.Logical("and", ast.Not(ast.Compare("<", ast.Name("a"), ast.Name("b"))), ast.Name("c")),
        ast.Name("d"))


def test_ternary_is_right_associative_and_loosest():
    expr = parse_expression("a ? b : c ? d : e + 1")
    assert isinstance(expr, ast.Ternary) and isinstance(expr.otherwise, ast.Ternary)
    assert isinstance(expr.otherwise.otherwise, ast.BinOp)


def test_postfix_forms():
    expr = parse_expression("T{k = 1, j = S.type[i]}[i, P.from(i)]")
    assert isinstance(expr, ast.BlockAccess)
    assert [key.label.name for key in expr.keys] == ["k", "j"]
    assert isinstance(expr.indices[1], ast.Call) and isinstance(expr.indices[1].func, ast.Attribute)
    call = parse_expression("gto(r, n, width = 0.5)")
    assert [kw.name.name for kw in call.kwargs] == ["width"] and len(call.args) == 2


def test_statements_and_spans():
    module = parse("model m\nhyper xs = [1, -2, 3.5]\nindex a, b : range(3)\n"
                   "output t with gradients(positions), u\n", "f.mt")
    model, hyper, index, output = module.statements
    assert model.name.span == ast.Span("f.mt", 1, 7, 1, 8)
    assert hyper.value == ast.ListLit((ast.IntLit(1), ast.Neg(ast.IntLit(2)), ast.FloatLit(3.5)))
    assert [n.name for n in index.names] == ["a", "b"] and index.names[1].span.col == 10
    assert output.items[0].gradients[0].name == "positions" and output.items[1].gradients is None


def test_spans_are_excluded_from_equality():
    assert parse("let  x =  1 +2", "a.mt") == parse("let x = 1 + 2\n", "a.mt")


def test_true_and_false_are_literals():
    assert parse_expression("true") == ast.BoolLit(True)
    assert parse("hyper flag = false").statements[0].value == ast.BoolLit(False)


# ---- E001 -----------------------------------------------------------------------------------------------


def codes(text):
    _, diagnostics = parse_module(text, "x.mt")
    return [(d.code, d.line, d.col) for d in diagnostics], diagnostics


def test_e001_says_what_was_expected():
    found, diagnostics = codes("hyper n = \nlet y = 1\n")
    assert found == [("E001", 2, 1)]
    assert "expected" in diagnostics[0].message and "`let`" in diagnostics[0].message


def test_e001_unexpected_character():
    found, diagnostics = codes("let y = 1 $ 2\n")
    assert ("E001", 1, 11) in found
    assert "`$`" in diagnostics[0].message


def test_e001_keywords_are_reserved():
    found, _ = codes("let sum = 1\n")
    assert found == [("E001", 1, 5)]
    found, _ = codes("index where : range(3)\n")
    assert found == [("E001", 1, 7)]


def test_e001_every_statement_is_reported():
    found, _ = codes("let a = (1\nlet b = 2\nlet c = ]\n")
    assert [line for _, line, _ in found] == [2, 3]


def test_e001_text_before_the_first_statement():
    found, diagnostics = codes("foo bar\nlet a = 1\n")
    assert found == [("E001", 1, 1)] and "statement" in diagnostics[0].message


def test_deep_nesting_is_parsed_or_reported_never_a_crash():
    shallow = "(" * 100 + "1" + ")" * 100
    assert parse_expression(shallow) == ast.IntLit(1)
    deep = "let y = " + "(" * 5000 + "1" + ")" * 5000 + "\n"
    module, diagnostics = parse_module(deep, "d.mt")
    assert module.statements == () or diagnostics == []
    chain = "let y = " + " + ".join(["x"] * 3000) + "\n"
    _, diagnostics = parse_module(chain, "c.mt")
    assert [d.code for d in diagnostics] in ([], ["E001"])
    negations = "let y = " + "-" * (MAX_DEPTH + 10) + "1\n"
    _, diagnostics = parse_module(negations, "n.mt")
    assert [d.code for d in diagnostics] == ["E001"] and "nested" in diagnostics[0].message


# ---- E002 -------------------------------------------------------------------------------------------------


def test_e002_integer_outside_64_bits():
    found, diagnostics = codes("let y = 9223372036854775808\n")
    assert found == [("E002", 1, 9)]
    assert "64 bits" in diagnostics[0].message


def test_e002_in_hyper_and_the_negative_limit():
    found, _ = codes("hyper big = -9223372036854775809\nhyper ok = -9223372036854775808\n"
                     "hyper fine = 9223372036854775807\n")
    assert found == [("E002", 1, 14)]


def test_e002_float_overflow():
    found, _ = codes("let y = 1e999\n")
    assert found == [("E002", 1, 9)]


def test_parse_raises_with_all_diagnostics():
    with pytest.raises(parse.__globals__["ParseError"]) as error:
        parse("let = 1\nlet y = 99999999999999999999\n")
    assert [d.code for d in error.value.diagnostics] == ["E001", "E002"]


def test_model_must_come_first(tmp_path):
    from mtdsl.lang import check

    path = tmp_path / "late.mt"
    path.write_text("hyper a = 1\nmodel late\n")
    assert [(d.code, d.line, d.col) for d in check(str(path))] == [("E001", 2, 1)]
    path.write_text("# a comment first is fine\nmodel early\nhyper a = 1\n")
    assert check(str(path)) == []
