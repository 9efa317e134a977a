"""From `.mt` text to the syntax tree (:mod:`mtdsl.lang.ast`).

The text is lexed once (:class:`_Lexer`, one regular expression built from the
terminals of ``grammar/mtdsl.lark``); the token stream is cut before every
statement keyword (`model use hyper input pairs dim index param let tensor
output convention`, which never occur inside a statement) and each piece is
parsed on its own from the ``statement`` start symbol by the LALR automaton
Lark builds from the grammar.  A syntax error therefore costs one statement:
every other statement is still parsed and checked, and every syntax error is
reported (E001).

The automaton's reductions call :class:`_Builder` directly (Lark's inline
transformer), so syntax nodes are built bottom-up without a parse tree and
without recursion.  A statement nested deeper than :data:`MAX_DEPTH` is
reported as E001 instead of reaching the recursive later passes.  No Lark
object leaves this module.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Optional

from lark import Lark
from lark.parsers.lalr_analysis import Shift

from . import ast
from .ast import Span
from .diagnostics import Diagnostic, Reporter, did_you_mean

#: deepest nesting a statement may have (parenthesized, negated or chained
#: sub-expressions); deeper input is reported as E001
MAX_DEPTH = 1000

#: integer literals must fit in a signed 64-bit integer (E002)
INT64_MAX = 2**63 - 1
#: digits of an integer literal kept by the parser: any longer literal is far beyond 64 bits
_LONG_LITERAL = 40

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


class Tok:
    """A token: its terminal ``type``, its text, and its position (1-based
    ``line``/``column``; ``end_column`` exclusive).  Lighter than Lark's Token."""

    __slots__ = ("type", "value", "start_pos", "line", "column", "end_line", "end_column", "end_pos")

    def __init__(self, type_: str, value: str, start_pos: int, line: int, column: int, end_line: int,
                 end_column: int, end_pos: int):
        self.type = type_
        self.value = value
        self.start_pos = start_pos
        self.line = line
        self.column = column
        self.end_line = end_line
        self.end_column = end_column
        self.end_pos = end_pos

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"Tok({self.type!r}, {self.value!r}, {self.line}:{self.column})"


Token = Tok


class _SyntaxIssue(Exception):
    def __init__(self, span: Span, message: str, hint: Optional[str] = None):
        super().__init__(message)
        self.span = span
        self.message = message
        self.hint = hint


# ---- syntax nodes from the parser's callbacks ----------------------------------------------------------


def _token_span(file: str, token: Token) -> Span:
    return Span(file, token.line, token.column, token.end_line, token.end_column)


def _start(item) -> Optional[tuple[int, int]]:
    """Where ``item`` (a token, a node, a list of them) starts, or None."""
    if type(item) is Tok:
        return (item.line, item.column)
    if isinstance(item, (tuple, list)):
        for sub in item:
            if sub is not None:
                found = _start(sub)
                if found is not None:
                    return found
        return None
    span = getattr(item, "span", None)
    if span is not None and span is not ast.NO_SPAN:
        return (span.line, span.col)
    return None


def _end(item) -> Optional[tuple[int, int]]:
    """Where ``item`` (a token, a node, a list of them) ends, or None."""
    if type(item) is Tok:
        return (item.end_line, item.end_column)
    if isinstance(item, (tuple, list)):
        for sub in reversed(item):
            if sub is not None:
                found = _end(sub)
                if found is not None:
                    return found
        return None
    span = getattr(item, "span", None)
    if span is not None and span is not ast.NO_SPAN:
        return (span.end_line, span.end_col)
    return None


class _Builder:
    """The parser's callbacks: one method per rule (or alias) of the grammar,
    called with the rule's kept children (tokens, nodes, None placeholders).
    A node's span covers its children; a statement's span is set afterwards to
    cover all its tokens."""

    def __init__(self):
        self.file = "<string>"

    # -- helpers
    def cover(self, *items) -> Span:
        start = _start(items)
        end = _end(items)
        if start is None or end is None:
            return ast.NO_SPAN
        return Span(self.file, start[0], start[1], end[0], end[1])

    def ident(self, token: Token) -> ast.Ident:
        return ast.Ident(str(token), _token_span(self.file, token))

    # -- statements
    def start(self, c):
        return tuple(c)

    def model_stmt(self, c):
        return ast.ModelStmt(self.ident(c[0]), self.cover(c))

    def use_stmt(self, c):
        return ast.UseStmt(self._string_token(c[0]), self.cover(c))

    def hyper_stmt(self, c):
        return ast.HyperStmt(self.ident(c[0]), c[1], self.cover(c))

    def input_stmt(self, c):
        return ast.InputStmt(self.ident(c[0]), self.ident(c[1]), c[2], self.cover(c))

    def pairs_stmt(self, c):
        return ast.PairsStmt(self.ident(c[0]), c[1], self.cover(c))

    def dim_stmt(self, c):
        return ast.DimStmt(self.ident(c[0]), c[1], self.cover(c))

    def index_stmt(self, c):
        return ast.IndexStmt(c[0], c[1], self.cover(c))

    def param_stmt(self, c):
        return ast.ParamStmt(self.ident(c[0]), c[1], c[2], self.cover(c))

    def let_stmt(self, c):
        return ast.LetStmt(self.ident(c[0]), c[1], c[2], self.cover(c))

    def tensor_stmt(self, c):
        return ast.TensorStmt(self.ident(c[0]), c[1], c[2], c[3], self.cover(c))

    def output_stmt(self, c):
        return ast.OutputStmt(tuple(c), self.cover(c))

    def convention_stmt(self, c):
        return ast.ConventionStmt(self.ident(c[0]), self._string_token(c[1]), self.cover(c))

    def name_list(self, c):
        return tuple(self.ident(token) for token in c)

    def bracket_names(self, c):
        return c[0] if c[0] is not None else ()

    def where_clause(self, c):
        return c[0]

    def output_item(self, c):
        return ast.OutputItem(self.ident(c[0]), c[1], self.cover(c))

    def gradients(self, c):
        return c[0] if c[0] is not None else ()

    # -- literals
    def negative(self, c):
        return ast.Neg(c[1], self.cover(c))

    def string(self, c):
        return self._string_token(c[0])

    def bare_name(self, c):
        token = c[0]
        if token.value == "true" or token.value == "false":
            return ast.BoolLit(token.value == "true", _token_span(self.file, token))
        raise _SyntaxIssue(
            _token_span(self.file, token),
            f"expected a literal (number, string, true, false or list), found `{token}`",
            hint="a hyper is a compile-time constant; write its value",
        )

    def list_literal(self, c):
        return ast.ListLit(tuple(item for item in c if item is not None), self.cover(c))

    def table_entry(self, c):
        return (c[0], c[1])

    def table_literal(self, c):
        entries = [entry for entry in c if entry is not None]
        return ast.TableLit(tuple(k for k, _ in entries), tuple(v for _, v in entries), self.cover(c))

    def integer(self, c):
        digits = c[0].value.lstrip("0") or "0"
        # beyond 64 bits the value only matters for E002: keep its first digits, so that
        # Python's limit on int conversion (4300 digits) and its quadratic cost never apply
        return ast.IntLit(int(digits[:_LONG_LITERAL]), _token_span(self.file, c[0]))

    def float(self, c):
        return ast.FloatLit(float(c[0].value), _token_span(self.file, c[0]))

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
    def signature(self, c):
        return ast.Signature(c[0], c[1], c[2], c[3], self.cover(c))

    def keys_section(self, c):
        return c[0]

    samples_section = keys_section
    components_section = keys_section
    properties_section = keys_section

    def section_body(self, c):
        return tuple(entry for entry in c if entry is not None)

    def labelled_entry(self, c):
        return ast.Entry(self.ident(c[0]), c[1], self.cover(c))

    def bare_entry(self, c):
        return ast.Entry(self.ident(c[0]), None, self.cover(c))

    # -- expressions
    def sum_expr(self, c):
        binders = tuple(item for item in c[1:-2])
        return ast.Sum(binders, c[-2], c[-1], self.cover(c))

    def binder(self, c):
        return ast.Binder(self.ident(c[0]), c[1], self.cover(c))

    def ternary(self, c):
        return ast.Ternary(c[0], c[1], c[2], self.cover(c))

    def or_op(self, c):
        return ast.Logical("or", c[0], c[1], self.cover(c))

    def and_op(self, c):
        return ast.Logical("and", c[0], c[1], self.cover(c))

    def not_op(self, c):
        return ast.Not(c[1], self.cover(c))

    def compare(self, c):
        return ast.Compare(str(c[1]), c[0], c[2], self.cover(c), _token_span(self.file, c[1]))

    def binop(self, c):
        return ast.BinOp(str(c[1]), c[0], c[2], self.cover(c), _token_span(self.file, c[1]))

    def neg(self, c):
        return ast.Neg(c[1], self.cover(c))

    def call(self, c):
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
        return ast.Call(c[0], tuple(args), tuple(kwargs), self.cover(c))

    def positional_argument(self, c):
        return c[0]

    def keyword_argument(self, c):
        return ast.KeywordArg(self.ident(c[0]), c[1], self.cover(c))

    def attribute(self, c):
        return ast.Attribute(c[0], self.ident(c[1]), self.cover(c))

    def subscript(self, c):
        return ast.Subscript(c[0], tuple(item for item in c[1:] if item is not None), self.cover(c))

    def block_access(self, c):
        keys = tuple(item for item in c[1:] if isinstance(item, ast.KeyBinding))
        indices = tuple(item for item in c[1:] if item is not None and not isinstance(item, ast.KeyBinding))
        return ast.BlockAccess(c[0], keys, indices, self.cover(c))

    def block_key(self, c):
        return ast.KeyBinding(self.ident(c[0]), c[1], self.cover(c))

    def name(self, c):
        token = c[0]
        if token.value == "true" or token.value == "false":
            return ast.BoolLit(token.value == "true", _token_span(self.file, token))
        return ast.Name(token.value, _token_span(self.file, token))


_BUILDER = _Builder()
_BUILD_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def lark_parser() -> Lark:
    """The Lark LALR parser of the grammar; its parse table drives :func:`_drive`."""
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="basic",
        propagate_positions=False,
        maybe_placeholders=True,
        start=["start", "statement"],
        cache=True,  # Lark keeps the analysed grammar in the temporary directory, keyed by its hash
    )


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


def _end_span(file: str, text: str) -> Span:
    lines = text.split("\n")
    line = len(lines)
    col = len(lines[-1]) + 1
    return Span(file, line, col, line, col + 1)


class _Lexer:
    """One regular expression for all terminals of the grammar (several times
    faster than Lark's generic lexer).  Keywords are the grammar's string
    terminals that look like names: a NAME spelled like one is that keyword,
    which makes keywords reserved."""

    _FIRST = ("STRING", "FLOAT", "INT", "NAME", "COMP_OP")

    def __init__(self, parser: Lark):
        regexes: dict[str, str] = {}
        strings: list[tuple[str, str]] = []
        self.keywords: dict[str, str] = {}
        for terminal in parser.terminals:
            pattern = terminal.pattern
            if terminal.name in ("WS", "COMMENT"):
                continue
            if pattern.type == "str":
                if pattern.value.isidentifier():
                    self.keywords[pattern.value] = terminal.name
                else:
                    strings.append((pattern.value, terminal.name))
            else:
                regexes[terminal.name] = pattern.to_regexp()
        parts = [r"(?P<WS>[ \t\f\r\n]+)", r"(?P<COMMENT>#[^\n]*)"]
        for name in self._FIRST:
            parts.append(f"(?P<{name}>{regexes.pop(name)})")
        strings.sort(key=lambda item: -len(item[0]))  # longest first: `==` before `=`
        self.string_names = dict(strings)
        parts.append("(?P<STR>" + "|".join(re.escape(value) for value, _ in strings) + ")")
        for name, regex in regexes.items():
            parts.append(f"(?P<{name}>{regex})")
        self.master = re.compile("|".join(parts))

    def lex(self, text: str, file: str, reporter: Reporter) -> list[Token]:
        tokens: list[Token] = []
        append = tokens.append
        keywords = self.keywords
        string_names = self.string_names
        match_at = self.master.match
        position, line, line_start = 0, 1, 0
        length = len(text)
        errors = 0
        while position < length:
            match = match_at(text, position)
            if match is None:
                char = text[position]
                col = position - line_start + 1
                if char == '"':
                    message = "unterminated string"
                elif char.isprintable():
                    message = f"unexpected character `{char}`"
                else:
                    message = f"unexpected character {char!r}"
                errors += 1
                if errors <= _MAX_LEX_ERRORS:
                    reporter.error("E001", Span(file, line, col, line, col + 1), message)
                if char == "\n":
                    line += 1
                    line_start = position + 1
                position += 1
                continue
            kind = match.lastgroup
            value = match.group()
            end = match.end()
            if kind == "WS" or kind == "COMMENT":
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = position + value.rfind("\n") + 1
                position = end
                continue
            if kind == "NAME":
                kind = keywords.get(value, "NAME")
            elif kind == "STR":
                kind = string_names[value]
            col = position - line_start + 1
            append(Tok(kind, value, position, line, col, line, col + len(value), end))
            position = end
        if errors > _MAX_LEX_ERRORS:
            reporter.error("E001", Span(file, line, 1, line, 2),
                           f"and {errors - _MAX_LEX_ERRORS} more unexpected characters")
        return tokens


@lru_cache(maxsize=1)
def _lexer() -> _Lexer:
    return _Lexer(lark_parser())


def tokenize(text: str, file: str, reporter: Reporter) -> list[Token]:
    """All tokens of ``text``; an unexpected character is reported (E001) and skipped."""
    return _lexer().lex(text, file, reporter)


_COMMENT_OR_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')


def extract_comments(text: str, file: str) -> tuple[ast.Comment, ...]:
    """Every `#` comment of ``text`` (outside strings), for the formatter."""
    if "#" not in text:
        return ()
    comments = []
    line_starts = [0]
    for match in re.finditer("\n", text):
        line_starts.append(match.end())
    for match in _COMMENT_OR_STRING.finditer(text):
        if not match.group().startswith("#"):
            continue
        line = bisect.bisect_right(line_starts, match.start())
        col = match.start() - line_starts[line - 1] + 1
        comments.append(ast.Comment(match.group().rstrip(), Span(file, line, col, line, col + len(match.group()))))
    return tuple(comments)


# ---- the LALR driver --------------------------------------------------------------------------------


class _Unexpected(Exception):
    def __init__(self, token: Token, state_stack: list):
        super().__init__(token)
        self.token = token
        self.state_stack = state_stack


class _TooDeep(Exception):
    def __init__(self, token: Token):
        super().__init__(token)
        self.token = token


@dataclasses.dataclass(frozen=True)
class _Reduce:
    """A reduction: which children the node keeps (an index, or None for the
    placeholder of an absent `[optional]`), and the builder method to call."""

    method: object
    size: int
    origin: str
    passthrough: bool  # `?rule` with a single child: the child goes up as is
    pick: Optional[tuple]  # None: keep all children as they are
    expand1: bool  # `?rule`: a single kept child goes up as is
    inline: bool  # a helper rule of Lark (`__x_star_0`): its children are spliced into its parent


def _picks(rule) -> Optional[tuple]:
    """Lark's child filter of ``rule`` (anonymous tokens dropped, None for absent
    `[optional]` parts), as a list of positions."""
    expansion = rule.expansion
    flags = rule.options.empty_indices
    if flags:
        ones = "".join(str(int(b)) for b in flags).split("0")
        nones = [len(run) for run in ones]
    else:
        nones = [0] * (len(expansion) + 1)
    pick: list = []
    for position, symbol in enumerate(expansion):
        pick.extend([None] * nones[position])
        if not (symbol.is_term and symbol.filter_out):
            if not symbol.is_term and symbol.name.startswith("_"):
                pick.append(("splice", position))
            else:
                pick.append(position)
    pick.extend([None] * nones[len(expansion)])
    if pick == list(range(len(expansion))):
        return None
    return tuple(pick)


@lru_cache(maxsize=1)
def _automaton():
    """Lark's LALR table as plain dictionaries: state -> {terminal or rule
    name: (True, next state) for a shift, (False, _Reduce) for a reduction}."""
    inner = lark_parser().parser.parser.parser  # ParsingFrontend -> LALR_Parser -> _Parser
    table = inner.parse_table
    reduces = {}
    for rule in inner.callbacks:
        if not hasattr(rule, "expansion"):
            continue
        size = len(rule.expansion)
        name = str(rule.alias or rule.origin.name)
        expand1 = bool(rule.options.expand1) and not rule.alias
        inline = name.startswith("_")
        method = None if inline else getattr(_BUILDER, name, None)
        reduces[rule] = _Reduce(method, size, str(rule.origin.name), size == 1 and expand1 and not inline,
                                _picks(rule), expand1, inline)
    states = {
        state: {str(symbol): (True, arg) if action is Shift else (False, reduces[arg])
                for symbol, (action, arg) in actions.items()}
        for state, actions in table.states.items()
    }
    return states, table.start_states, table.end_states


_CHAINS: dict = {}  # (state below, state, terminal) -> state after a run of pass-through reductions


def _drive(tokens: list[Tok], start: str, end_token: Tok):
    """Run the LALR automaton over ``tokens`` (as Lark's ``ParserState.feed_token``
    does); reductions call the builder.  Runs of pass-through reductions (`?rule`
    with one child: the child goes up as is) depend only on the two top states
    and the lookahead, so they are followed once and remembered.  A parallel
    stack measures the nesting depth of what was built, so that too deep input
    stops early."""
    states, start_states, end_states = _automaton()
    end_state = end_states[start]
    state_stack = [start_states[start]]
    value_stack: list = []
    depth_stack: list[int] = []
    chains = _CHAINS
    tokens = list(tokens)
    tokens.append(end_token)
    for token in tokens:
        kind = token.type
        is_end = token is end_token
        while True:
            action = states[state_stack[-1]].get(kind)
            if action is None:
                raise _Unexpected(token, state_stack)
            shift, arg = action
            if shift:
                state_stack.append(arg)
                value_stack.append(token)
                depth_stack.append(0)
                break
            if arg.passthrough:
                below, current = state_stack[-2], state_stack[-1]
                target = chains.get((below, current, kind))
                if target is None:
                    target = current
                    while True:
                        step = states[target].get(kind)
                        if step is None or step[0] or not step[1].passthrough:
                            break
                        target = states[below][step[1].origin][1]
                        if is_end and target == end_state:
                            break
                    chains[(below, current, kind)] = target
                state_stack[-1] = target
                if is_end and target == end_state:
                    return value_stack[-1]
                continue
            size = arg.size
            if size:
                children = value_stack[-size:]
                depths = depth_stack[-size:]
                del state_stack[-size:]
                del value_stack[-size:]
                del depth_stack[-size:]
                depth = max(depths)
            else:
                children, depth = [], 0
            pick = arg.pick
            if pick is not None:
                picked: list = []
                for i in pick:
                    if i is None:
                        picked.append(None)
                    elif type(i) is int:
                        picked.append(children[i])
                    else:
                        picked.extend(children[i[1]])
                children = picked
            if arg.inline:
                value = children  # spliced into the parent: adds no level
            elif arg.expand1 and len(children) == 1:
                value = children[0]  # an inlined `?rule` adds no level
            else:
                value = arg.method(children)
                depth += 1
                if depth > MAX_DEPTH:
                    raise _TooDeep(token)
            new_state = states[state_stack[-1]][arg.origin][1]
            state_stack.append(new_state)
            value_stack.append(value)
            depth_stack.append(depth)
            if is_end and new_state == end_state:
                return value
    raise _Unexpected(end_token, state_stack)  # pragma: no cover - the end token always decides


def _accepted(state_stack: list, start: str = "statement") -> set[str]:
    """The terminals the automaton would shift next (or, for the end, accept), after any reductions."""
    states, _, end_states = _automaton()
    end_state = end_states[start]
    accepted = set()
    for terminal in states[state_stack[-1]]:
        if not (terminal.isupper() or terminal == "$END"):
            continue
        stack = list(state_stack)
        for _ in range(10_000):
            shift, arg = states[stack[-1]].get(terminal, (None, None))
            if shift is None:
                break
            if shift:
                accepted.add(terminal)
                break
            if arg.size:
                del stack[-arg.size:]
            goto = states[stack[-1]].get(arg.origin)
            if goto is None:
                break
            stack.append(goto[1])
            if terminal == "$END" and goto[1] == end_state:
                accepted.add(terminal)
                break
    return accepted


# ---- literal checks (E002) -----------------------------------------------------------------


def _check_literals(statement: ast.Node, reporter: Reporter) -> None:
    for node, parent in ast.walk(statement):
        if isinstance(node, ast.IntLit):
            limit = INT64_MAX + 1 if isinstance(parent, ast.Neg) else INT64_MAX
            if node.value > limit:
                reporter.error(
                    "E002", node.span, f"integer literal {_shown(node.value)} does not fit in 64 bits",
                    hint=f"integers range from {-INT64_MAX - 1} to {INT64_MAX}",
                )
        elif isinstance(node, ast.FloatLit) and math.isinf(node.value):
            reporter.error("E002", node.span, "number literal too large for a 64-bit float")


def _shown(value: int) -> str:
    text = str(value)
    return text if len(text) < _LONG_LITERAL else text[:20] + "..."


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
    first = chunk[0]
    if first.type not in STATEMENT_KEYWORDS:
        keywords = [name.lower() for name in STATEMENT_KEYWORDS]
        reporter.error(
            "E001", _token_span(file, first),
            f"expected a statement (model, use, hyper, input, pairs, dim, index, param, let, "
            f"tensor, output or convention), found {_describe_token(first)}",
            hint=did_you_mean(first.value, keywords) if first.type == "NAME" else None,
        )
        return None
    last = chunk[-1]
    end = Tok("$END", "", last.end_pos, last.end_line, last.end_column, last.end_line, last.end_column,
                last.end_pos)
    try:
        statement = _drive(chunk, "statement", end)
    except _Unexpected as error:
        token = error.token
        if token.type == "$END":
            span = _token_span(file, follower) if follower is not None else _end_span(file, text)
            found = _describe_token(follower)
        else:
            span = _token_span(file, token)
            found = _describe_token(token)
        reporter.error("E001", span, f"expected {_expected(_accepted(error.state_stack))}, found {found}")
        return None
    except _TooDeep as error:
        reporter.error("E001", _token_span(file, error.token),
                       f"expression nested more than {MAX_DEPTH} levels deep",
                       hint="split it into `let` definitions")
        return None
    except _SyntaxIssue as issue:
        reporter.error("E001", issue.span, issue.message, hint=issue.hint)
        return None
    statement = dataclasses.replace(
        statement, span=Span(file, first.line, first.column, last.end_line, last.end_column))
    if any((t.type == "INT" and len(t.value) > 18) or (t.type == "FLOAT" and len(t.value) > 300)
           or (t.type == "FLOAT" and ("e" in t.value or "E" in t.value)) for t in chunk):
        _check_literals(statement, reporter)
    return statement


def _parse_tokens(text: str, file: str, reporter: Reporter) -> ast.Module:
    tokens = tokenize(text, file, reporter)
    chunks = _statement_chunks(tokens)
    statements = []
    broken: list[ast.Ident] = []
    for position, chunk in enumerate(chunks):
        follower = chunks[position + 1][0] if position + 1 < len(chunks) else None
        statement = _parse_chunk(chunk, follower, file, text, reporter)
        if statement is not None:
            statements.append(statement)
        else:
            broken.extend(_defined_names(chunk, file))
    return ast.Module(file, tuple(statements), broken=tuple(broken), comments=extract_comments(text, file))


def parse_module(text: str, file: str = "<string>", reporter: Optional[Reporter] = None
                 ) -> tuple[ast.Module, list[Diagnostic]]:
    """Parse the text of one file.  Returns the module (the statements that
    parsed) and the diagnostics (E001, E002); when a ``reporter`` is given,
    diagnostics are added to it as well."""
    own = Reporter()
    lark_parser()
    with _BUILD_LOCK:
        _BUILDER.file = file
        module = _parse_tokens(text, file, own)
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
    if not isinstance(statement, ast.LetStmt):  # pragma: no cover - `let _ =` parses as a let
        raise ParseError([])
    return statement.body


class ParseError(Exception):
    """Raised by :func:`parse`; holds every syntax diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("; ".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics
