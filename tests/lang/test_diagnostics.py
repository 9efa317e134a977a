"""Rendering of diagnostics: header, source line, caret under the span, hint."""

from __future__ import annotations

import io

from mtdsl.lang.ast import Span
from mtdsl.lang.diagnostics import Diagnostic, Reporter, closest, render, use_color


def test_render_points_a_caret_under_the_span():
    source = "let y = n_radail * 2\n"
    diagnostic = Diagnostic.at(Span("m.mt", 1, 9, 1, 17), "E101", "undefined name `n_radail`",
                               hint="did you mean `n_radial`?")
    text = render(diagnostic, sources={"m.mt": source})
    lines = text.splitlines()
    assert lines[0] == "m.mt:1:9: error[E101]: undefined name `n_radail`"
    assert lines[1].endswith("| let y = n_radail * 2")
    caret_line = lines[2]
    assert caret_line.index("^") == lines[1].index("n_radail") and caret_line.count("^") == 8
    assert lines[3] == "  hint: did you mean `n_radial`?"


def test_render_warning_and_missing_source():
    diagnostic = Diagnostic("W401", "/nowhere/x.mt", 3, 2, "key never reached", severity="warning")
    assert render(diagnostic) == "/nowhere/x.mt:3:2: warning[W401]: key never reached"


def test_colour_only_when_asked_and_on_a_terminal():
    diagnostic = Diagnostic("E001", "m.mt", 1, 1, "bad")
    assert "\033[" in render(diagnostic, sources={"m.mt": "x"}, color=True)
    assert "\033[" not in render(diagnostic, sources={"m.mt": "x"}, color=False)
    assert use_color(io.StringIO()) is False


def test_reporter_deduplicates_and_sorts():
    reporter = Reporter()
    reporter.error("E202", Span("b.mt", 2, 1, 2, 2), "x")
    reporter.error("E202", Span("b.mt", 2, 1, 2, 2), "x")
    reporter.error("E101", Span("a.mt", 5, 1, 5, 2), "y")
    assert [(d.file, d.code) for d in reporter.sorted()] == [("a.mt", "E101"), ("b.mt", "E202")]
    assert reporter.has_errors


def test_closest_name():
    assert closest("radail", ["radial", "angular"]) == "radial"
    assert closest("zzz", ["radial"]) is None
