"""From `.mt` text to the syntax tree (:mod:`mtdsl.lang.ast`).

The text is lexed once with the Lark lexer of ``grammar/mtdsl.lark``; the
token stream is cut before every statement keyword (`model use hyper input
pairs dim index param let tensor output convention`, which never occur inside
a statement) and each piece is parsed on its own from the ``statement`` start
symbol.  A syntax error therefore costs one statement: every other statement
is still parsed and checked, and every syntax error is reported (E001).

No Lark object leaves this module.  The tree is built iteratively, and a
statement nested deeper than :data:`MAX_DEPTH` is reported as E001 instead of
reaching the recursive later passes.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Optional

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from . import ast
from .ast import Span
from .diagnostics import Diagnostic, Reporter

#: deepest parse tree a statement may have (parenthesized or chained
#: sub-expressions); deeper input is reported as E001
MAX_DEPTH = 400

#: integer literals must fit in a signed 64-bit integer (E002)
INT64_MAX = 2**63 - 1

STATEMENT_KEYWORDS = frozenset(
    ["MODEL", "USE", "HYPER", "INPUT", "PAIRS", "DIM", "INDEX", "PARAM", "LET", "TENSOR",
     "OUTPUT", "CONVENTION"]
)

_MAX_LEX_ERRORS = 20


def grammar_text() -> str:
    """The text of ``grammar/mtdsl.lark`` (package data ``mtdsl.grammar``)."""
    try:
        from importlib.resources import files

        return (files("mtdsl.grammar") / "mtdsl.lark").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        path = Path(__file__).resolve().parents[2] / "grammar" / "mtdsl.lark"
        return path.read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def lark_parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="basic",
        propagate_positions=True,
        maybe_placeholders=True,
        start=["start", "statement"],
    )


class _SyntaxIssue(Exception):
    def __init__(self, span: Span, message: str, hint: Optional[str] = None):
        super().__init__(message)
        self.span = span
        self.message = message
        self.hint = hint


# ---- tokens ------------------------------------------------------------------------------

_DESCRIPTIONS = {
    "NAME": "a name",
    "INT": "a number",
    "FLOAT": "a number",
    "STRING": "a string",
    "COMP_OP": "a comparison",
    "MUL_OP": "`*`, `/` or `%`",
    "$END": "the end of the statement",
}


def _describe_terminal(name: str) -> str:
    if name in _DESCRIPTIONS:
        return _DESCRIPTIONS[name]
    try:
        pattern = lark_parser().get_terminal(name).pattern
    except KeyError:
        return name
    if pattern.type == "str":
        return f"`{pattern.value}`"
    return name.lower()


def _describe_token(token: Optional[Token]) -> str:
    if token is None or token.type == "$END":
        return "end of input"
    return f"`{token.value}`"


def _expected(names) -> str:
    descriptions = sorted({_describe_terminal(name) for name in names})
    if not descriptions:
        return "nothing"
    if len(descriptions) > 12:
        return ", ".join(descriptions[:12]) + ", ..."
    if len(descriptions) == 1:
        return descriptions[0]
    return ", ".join(descriptions[:-1]) + " or " + descriptions[-1]


def _token_span(file: str, token: Token) -> Span:
    line = token.line or 1
    col = token.column or 1
    end_line = token.end_line or line
    end_col = token.end_column or col + max(len(token.value), 1)
    return Span(file, line, col, end_line, end_col)


def _end_span(file: str, text: str) -> Span:
    lines = text.split("\n")
    line = len(lines)
    col = len(lines[-1]) + 1
    return Span(file, line, col, line, col + 1)


def tokenize(text: str, file: str, reporter: Reporter) -> list[Token]:
    """All tokens of ``text``; an unexpected character is reported (E001) and
    read as a space, so that lexing goes on."""
    parser = lark_parser()
    errors = 0
    while True:
        try:
            return list(parser.lex(text))
        except UnexpectedCharacters as error:
            errors += 1
            line, col = error.line, error.column
            char = text[error.pos_in_stream] if error.pos_in_stream < len(text) else ""
            shown = char if char.isprintable() and char != "" else repr(char)
            message = f"unexpected character `{shown}`"
            if char == '"':
                message = "unterminated string"
            reporter.error("E001", Span(file, line, col, line, col + 1), message)
            if errors >= _MAX_LEX_ERRORS:
                reporter.error("E001", Span(file, line, col, line, col + 1),
                               "too many unexpected characters; stopped reading this file")
                return []
            position = error.pos_in_stream
            text = text[:position] + " " + text[position + 1:]


_COMMENT_OR_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')


def extract_comments(text: str, file: str) -> tuple[ast.Comment, ...]:
    """Every `#` comment of ``text`` (outside strings), for the formatter."""
    comments = []
    line_starts = [0]
    for match in re.finditer("\n", text):
        line_starts.append(match.end())
    import bisect

    for match in _COMMENT_OR_STRING.finditer(text):
        if not match.group().startswith("#"):
            continue
        line = bisect.bisect_right(line_starts, match.start())
        col = match.start() - line_starts[line - 1] + 1
        comments.append(ast.Comment(match.group().rstrip(), Span(file, line, col, line, col + len(match.group()))))
    return tuple(comments)


# ---- parse tree -> syntax tree ---------------------------------------------------------------


def _depth(tree: Tree) -> tuple[int, Tree]:
    """Depth of ``tree`` and its deepest subtree, computed without recursion."""
    deepest, where = 0, tree
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest, where = depth, node
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, depth + 1))
    return deepest, where


class _Builder:
    """Builds syntax nodes bottom-up from a Lark tree, iteratively."""

    def __init__(self, file: str):
        self.file = file

    # -- helpers
    def span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return ast.NO_SPAN
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def ident(self, token: Token) -> ast.Ident:
        return ast.Ident(str(token), _token_span(self.file, token))

    def build(self, tree: Tree):
        stack: list[tuple[object, bool]] = [(tree, False)]
        values: list[object] = []
        while stack:
            node, expanded = stack.pop()
            if not isinstance(node, Tree):
                values.append(node)
                continue
            if not expanded:
                stack.append((node, True))
                for child in reversed(node.children):
                    stack.append((child, False))
                continue
            count = len(node.children)
            args = values[len(values) - count:] if count else []
            if count:
                del values[len(values) - count:]
            handler = getattr(self, "_" + str(node.data))
            values.append(handler(node.meta, args))
        return values[0]

    # -- statements
    def _model_stmt(self, meta, c):
        return ast.ModelStmt(self.ident(c[0]), self.span(meta))

    def _use_stmt(self, meta, c):
        return ast.UseStmt(self._string_token(c[0]), self.span(meta))

    def _hyper_stmt(self, meta, c):
        return ast.HyperStmt(self.ident(c[0]), c[1], self.span(meta))

    def _input_stmt(self, meta, c):
        return ast.InputStmt(self.ident(c[0]), self.ident(c[1]), c[2], self.span(meta))

    def _pairs_stmt(self, meta, c):
        return ast.PairsStmt(self.ident(c[0]), c[1], self.span(meta))

    def _dim_stmt(self, meta, c):
        return ast.DimStmt(self.ident(c[0]), c[1], self.span(meta))

    def _index_stmt(self, meta, c):
        return ast.IndexStmt(c[0], c[1], self.span(meta))

    def _param_stmt(self, meta, c):
        return ast.ParamStmt(self.ident(c[0]), c[1], c[2], self.span(meta))

    def _let_stmt(self, meta, c):
        return ast.LetStmt(self.ident(c[0]), c[1], c[2], self.span(meta))

    def _tensor_stmt(self, meta, c):
        return ast.TensorStmt(self.ident(c[0]), c[1], c[2], c[3], self.span(meta))

    def _output_stmt(self, meta, c):
        return ast.OutputStmt(tuple(c), self.span(meta))

    def _convention_stmt(self, meta, c):
        return ast.ConventionStmt(self.ident(c[0]), self._string_token(c[1]), self.span(meta))

    def _name_list(self, meta, c):
        return tuple(self.ident(token) for token in c)

    def _bracket_names(self, meta, c):
        return c[0] if c[0] is not None else ()

    def _where_clause(self, meta, c):
        return c[0]

    def _output_item(self, meta, c):
        return ast.OutputItem(self.ident(c[0]), c[1], self.span(meta))

    def _gradients(self, meta, c):
        return c[0] if c[0] is not None else ()

    # -- literals
    def _negative(self, meta, c):
        return ast.Neg(c[1], self.span(meta))

    def _string(self, meta, c):
        return self._string_token(c[0])

    def _bare_name(self, meta, c):
        token = c[0]
        if token == "true" or token == "false":
            return ast.BoolLit(token == "true", _token_span(self.file, token))
        raise _SyntaxIssue(
            _token_span(self.file, token),
            f"expected a literal (number, string, true, false or list), found `{token}`",
            hint="a hyper is a compile-time constant; write its value",
        )

    def _list_literal(self, meta, c):
        return ast.ListLit(tuple(item for item in c if item is not None), self.span(meta))

    def _integer(self, meta, c):
        return ast.IntLit(int(c[0]), _token_span(self.file, c[0]))

    def _float(self, meta, c):
        return ast.FloatLit(float(c[0]), _token_span(self.file, c[0]))

    def _string_token(self, token: Token) -> ast.StrLit:
        raw = str(token)[1:-1]
        out = []
        chars = iter(raw)
        for char in chars:
            if char == "\\":
                escaped = next(chars, "")
                out.append({"n": "\n", "t": "\t"}.get(escaped, escaped))
            else:
                out.append(char)
        return ast.StrLit("".join(out), _token_span(self.file, token))

    # -- signatures
    def _signature(self, meta, c):
        return ast.Signature(c[0], c[1], c[2], c[3], self.span(meta))

    def _keys_section(self, meta, c):
        return c[0]

    _samples_section = _keys_section
    _components_section = _keys_section
    _properties_section = _keys_section

    def _section_body(self, meta, c):
        return tuple(entry for entry in c if entry is not None)

    def _labelled_entry(self, meta, c):
        return ast.Entry(self.ident(c[0]), c[1], self.span(meta))

    def _bare_entry(self, meta, c):
        return ast.Entry(self.ident(c[0]), None, self.span(meta))

    # -- expressions
    def _sum_expr(self, meta, c):
        binders = tuple(item for item in c[:-2])
        return ast.Sum(binders, c[-2], c[-1], self.span(meta))

    def _binder(self, meta, c):
        return ast.Binder(self.ident(c[0]), c[1], self.span(meta))

    def _ternary(self, meta, c):
        return ast.Ternary(c[0], c[1], c[2], self.span(meta))

    def _or_op(self, meta, c):
        return ast.Logical("or", c[0], c[1], self.span(meta))

    def _and_op(self, meta, c):
        return ast.Logical("and", c[0], c[1], self.span(meta))

    def _not_op(self, meta, c):
        return ast.Not(c[0], self.span(meta))

    def _compare(self, meta, c):
        return ast.Compare(str(c[1]), c[0], c[2], self.span(meta), _token_span(self.file, c[1]))

    def _binop(self, meta, c):
        return ast.BinOp(str(c[1]), c[0], c[2], self.span(meta), _token_span(self.file, c[1]))

    def _neg(self, meta, c):
        return ast.Neg(c[1], self.span(meta))

    def _call(self, meta, c):
        args: list = []
        kwargs: list = []
        for item in c[1:]:
            if item is None:
                continue
            if isinstance(item, ast.KeywordArg):
                kwargs.append(item)
            elif kwargs:
                raise _SyntaxIssue(item.span, "positional argument after a keyword argument")
            else:
                args.append(item)
        return ast.Call(c[0], tuple(args), tuple(kwargs), self.span(meta))

    def _positional_argument(self, meta, c):
        return c[0]

    def _keyword_argument(self, meta, c):
        return ast.KeywordArg(self.ident(c[0]), c[1], self.span(meta))

    def _attribute(self, meta, c):
        return ast.Attribute(c[0], self.ident(c[1]), self.span(meta))

    def _subscript(self, meta, c):
        return ast.Subscript(c[0], tuple(item for item in c[1:] if item is not None), self.span(meta))

    def _block_access(self, meta, c):
        keys = tuple(item for item in c[1:] if isinstance(item, ast.KeyBinding))
        indices = tuple(item for item in c[1:] if item is not None and not isinstance(item, ast.KeyBinding))
        return ast.BlockAccess(c[0], keys, indices, self.span(meta))

    def _block_key(self, meta, c):
        return ast.KeyBinding(self.ident(c[0]), c[1], self.span(meta))

    def _name(self, meta, c):
        token = c[0]
        if token == "true" or token == "false":
            return ast.BoolLit(token == "true", _token_span(self.file, token))
        return ast.Name(str(token), _token_span(self.file, token))


# ---- literal checks (E002) -----------------------------------------------------------------


def _check_literals(statement: ast.Node, reporter: Reporter) -> None:
    for node, parent in ast.walk(statement):
        if isinstance(node, ast.IntLit):
            limit = INT64_MAX + 1 if isinstance(parent, ast.Neg) else INT64_MAX
            if node.value > limit:
                reporter.error(
                    "E002", node.span, f"integer literal {node.value} does not fit in 64 bits",
                    hint=f"integers range from {-INT64_MAX - 1} to {INT64_MAX}",
                )
        elif isinstance(node, ast.FloatLit) and math.isinf(node.value):
            reporter.error("E002", node.span, "number literal too large for a 64-bit float")


# ---- entry points ---------------------------------------------------------------------------------


def _statement_chunks(tokens: list[Token]) -> list[list[Token]]:
    chunks: list[list[Token]] = []
    for token in tokens:
        if token.type in STATEMENT_KEYWORDS or not chunks:
            chunks.append([token])
        else:
            chunks[-1].append(token)
    return chunks


def _defined_names(chunk: list[Token], file: str) -> list[ast.Ident]:
    """The names a statement that failed to parse was going to define."""
    if not chunk or chunk[0].type not in ("HYPER", "INPUT", "PAIRS", "DIM", "PARAM", "LET", "TENSOR", "INDEX"):
        return []
    if chunk[0].type == "INDEX":
        names = []
        for token in chunk[1:]:
            if token.type == "NAME":
                names.append(ast.Ident(str(token), _token_span(file, token)))
            elif token.type != "COMMA":
                break
        return names
    if len(chunk) > 1 and chunk[1].type == "NAME":
        return [ast.Ident(str(chunk[1]), _token_span(file, chunk[1]))]
    return []


def _parse_chunk(chunk: list[Token], follower: Optional[Token], file: str, text: str,
                 reporter: Reporter) -> Optional[ast.Node]:
    parser = lark_parser()
    first = chunk[0]
    if first.type not in STATEMENT_KEYWORDS:
        reporter.error(
            "E001", _token_span(file, first),
            f"expected a statement (model, use, hyper, input, pairs, dim, index, param, let, "
            f"tensor, output or convention), found {_describe_token(first)}",
        )
        return None
    interactive = parser.parse_interactive(start="statement")
    try:
        for token in chunk:
            interactive.feed_token(token)
        tree = interactive.feed_eof(chunk[-1])
    except UnexpectedToken as error:
        token = error.token
        if token.type == "$END":
            span = _token_span(file, follower) if follower is not None else _end_span(file, text)
            found = _describe_token(follower)
        else:
            span = _token_span(file, token)
            found = _describe_token(token)
        expected = error.expected
        try:
            expected = interactive.accepts() or expected
        except Exception:  # noqa: BLE001 - fall back to the parser's raw lookahead set
            pass
        reporter.error("E001", span, f"expected {_expected(expected)}, found {found}")
        return None
    except UnexpectedInput as error:  # pragma: no cover - other Lark errors, reported alike
        reporter.error("E001", _token_span(file, first), f"syntax error: {error}")
        return None
    if isinstance(tree, Tree):
        depth, deepest = _depth(tree)
        if depth > MAX_DEPTH:
            meta = deepest.meta
            span = (Span(file, meta.line, meta.column, meta.end_line, meta.end_column)
                    if not getattr(meta, "empty", True) else _token_span(file, first))
            reporter.error(
                "E001", span, f"expression nested more than {MAX_DEPTH} levels deep",
                hint="split it into `let` definitions",
            )
            return None
    try:
        statement = _Builder(file).build(tree)
    except _SyntaxIssue as issue:
        reporter.error("E001", issue.span, issue.message, hint=issue.hint)
        return None
    _check_literals(statement, reporter)
    return statement


def parse_module(text: str, file: str = "<string>", reporter: Optional[Reporter] = None
                 ) -> tuple[ast.Module, list[Diagnostic]]:
    """Parse the text of one file.  Returns the module (the statements that
    parsed) and the diagnostics (E001, E002); when a ``reporter`` is given,
    diagnostics are added to it as well."""
    own = Reporter()
    tokens = tokenize(text, file, own)
    chunks = _statement_chunks(tokens)
    statements = []
    broken: list[ast.Ident] = []
    for position, chunk in enumerate(chunks):
        follower = chunks[position + 1][0] if position + 1 < len(chunks) else None
        statement = _parse_chunk(chunk, follower, file, text, own)
        if statement is not None:
            statements.append(statement)
        else:
            broken.extend(_defined_names(chunk, file))
    module = ast.Module(file, tuple(statements), broken=tuple(broken), comments=extract_comments(text, file))
    if reporter is not None:
        for diagnostic in own.diagnostics:
            reporter.add(diagnostic)
    return module, own.diagnostics


def parse(text: str, file: str = "<string>") -> ast.Module:
    """Parse ``text``, raising :class:`ParseError` on any syntax error."""
    module, diagnostics = parse_module(text, file)
    if diagnostics:
        raise ParseError(diagnostics)
    return module


def parse_expression(text: str, file: str = "<string>") -> ast.Node:
    """Parse one expression (a convenience for tests and tools)."""
    module = parse(f"let _ = {text}", file)
    statement = module.statements[0]
    assert isinstance(statement, ast.LetStmt)
    return statement.body


class ParseError(Exception):
    """Raised by :func:`parse`; holds every syntax diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("; ".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics
