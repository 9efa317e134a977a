"""No input gives a traceback: random token soups and mutations of the
reference programs all come back as diagnostics with valid positions."""

from __future__ import annotations

import random
import re
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from mtdsl.lang import check, check_source

from .conftest import EXAMPLES
from .test_examples import REFERENCE

VOCABULARY = [
    "model", "use", "hyper", "input", "pairs", "dim", "index", "param", "let", "tensor", "output", "convention",
    "keys", "samples", "components", "properties", "where", "sum", "in", "with", "gradients", "and", "or", "not",
    "S", "P", "i", "l", "m", "n", "p", "x", "rho", "systems", "tensormap", "range", "irrep", "atoms", "species",
    "sph", "cg", "exp", "tanh", "neighbors", "from", "positions", "vector", "distance", "type", "true", "xyz",
    "0", "1", "2", "1.5", "9223372036854775808", '"a.mt"', '"metatensor"', "~", "zeros", "normal",
    "=", "==", "<=", "<", "+", "-", "*", "/", "%", "^", "?", ":", ",", ".", "(", ")", "[", "]", "{", "}",
    "\n", "@", "#c\n",
]
CODE = re.compile(r"^[EW]\d{3}$")
TOKEN = re.compile(r'"[^"\n]*"|[A-Za-z_][A-Za-z0-9_]*|\d+\.\d*|\d+|==|!=|<=|>=|#[^\n]*|\S')

SETTINGS = settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "120")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def assert_valid(diagnostics, texts: dict[str, str]):
    for diagnostic in diagnostics:
        assert CODE.match(diagnostic.code), diagnostic
        assert diagnostic.code != "E000", diagnostic  # an internal error of the checker
        assert diagnostic.line >= 1 and diagnostic.col >= 1, diagnostic
        assert diagnostic.message
        text = texts.get(Path(diagnostic.file).name)
        if text is not None:
            assert diagnostic.line <= text.count("\n") + 2, diagnostic


@SETTINGS
@given(st.lists(st.sampled_from(VOCABULARY), max_size=60))
def test_random_token_sequences(tokens):
    text = " ".join(tokens)
    diagnostics = check_source(text, "soup.mt")
    assert_valid(diagnostics, {"soup.mt": text})


@SETTINGS
@given(st.sampled_from(REFERENCE), st.integers(min_value=0, max_value=2**32),
       st.lists(st.sampled_from(["delete", "swap", "duplicate", "replace"]), min_size=1, max_size=4))
def test_mutated_reference_programs(name, seed, operations):
    rng = random.Random(seed)
    text = (EXAMPLES / name).read_text()
    tokens = [(m.start(), m.end()) for m in TOKEN.finditer(text)]
    pieces = [text[a:b] for a, b in tokens]
    for operation in operations:
        if not pieces:
            break
        k = rng.randrange(len(pieces))
        if operation == "delete":
            del pieces[k]
        elif operation == "swap":
            j = rng.randrange(len(pieces))
            pieces[k], pieces[j] = pieces[j], pieces[k]
        elif operation == "duplicate":
            pieces.insert(k, pieces[k])
        else:
            pieces[k] = rng.choice(VOCABULARY)
    mutated = " ".join(pieces)
    with tempfile.TemporaryDirectory() as directory:
        for other in REFERENCE:
            shutil.copy(EXAMPLES / other, Path(directory) / other)
        (Path(directory) / name).write_text(mutated)
        diagnostics = check(str(Path(directory) / name))
    texts = {other: (EXAMPLES / other).read_text() for other in REFERENCE}
    texts[name] = mutated
    assert_valid(diagnostics, texts)


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text(text):
    assert_valid(check_source(text, "any.mt"), {"any.mt": text})


# -- inputs that reached E000 (issue 17): long literals, impossible paths, huge hypers ----------------


def _codes(text, overrides=None):
    diagnostics = check_source(text, "hostile.mt", overrides)
    assert_valid(diagnostics, {"hostile.mt": text})
    return [d.code for d in diagnostics]


def test_integer_literals_of_any_length_are_e002():
    for digits in (20, 4300, 4301, 50_000):
        assert _codes(f"hyper n = {'7' * digits}\n") == ["E002"], digits
        assert _codes(f"hyper n = -{'7' * digits}\n") == ["E002"], digits
        assert "E002" in _codes(f"dim d = range({'1' * digits})\n"), digits


def test_impossible_use_paths_are_e104():
    for path in ("a\x00b.mt", "\x00", "a\x01.mt", "tab\there.mt", "x\x7f.mt"):
        diagnostics = check_source(f'use "{path}"\n', "hostile.mt")
        assert [d.code for d in diagnostics] == ["E104"], (path, diagnostics)
        assert "character" in diagnostics[0].message


def test_huge_hypers_are_refused_at_check_time(monkeypatch):
    text = (EXAMPLES / "spherical_expansion.mt").read_text()
    diagnostics = check_source(text, "expansion.mt", {"max_angular": "2147483648"})
    assert [d.code for d in diagnostics] == ["E106"]
    assert "max_angular" in diagnostics[0].message and "2147483648" in diagnostics[0].message
    assert "--set max_angular=2147483648" in diagnostics[0].message
    assert diagnostics[0].line == text.splitlines().index("hyper max_angular = 4") + 1
    assert [d.code for d in check_source(text, "expansion.mt", {"n_radial": "100001"})] == ["E106"]
    assert check_source(text, "expansion.mt", {"n_radial": "100000"}) == []
    monkeypatch.setenv("MTDSL_MAX_DIMENSION", "50")
    assert [d.code for d in check_source(text, "expansion.mt", {"n_radial": "51"})] == ["E106"]
    assert [d.code for d in check_source("dim d = range(10000000000)\n", "d.mt")] == ["E106"]
    assert [d.code for d in check_source("index k : irrep(9223372036854775807)\n", "k.mt")] == ["E106"]


def test_cli_check_refuses_a_huge_hyper(capsys):
    from mtdsl.cli import main

    assert main(["check", str(EXAMPLES / "spherical_expansion.mt"), "--set", "max_angular=2147483648"]) == 1
    err = capsys.readouterr().err
    assert "error[E106]" in err and "max_angular" in err and "E000" not in err


#: hostile replacements for the mutation tests: long literals, control bytes, huge hypers
HOSTILE = ["9" * 4301, "1" * 25, "\x00", "\x01", "\x7f", '"a\x00b.mt"', "2147483648", "9223372036854775807",
           "1e400", "\ud800", "\t", "\x1b[31m"]


@SETTINGS
@given(st.sampled_from(REFERENCE), st.integers(min_value=0, max_value=2**32),
       st.lists(st.sampled_from(["replace", "insert", "number"]), min_size=1, max_size=4))
def test_hostile_mutations_of_reference_programs(name, seed, operations):
    rng = random.Random(seed)
    text = (EXAMPLES / name).read_text()
    pieces = [m.group(0) for m in TOKEN.finditer(text)]
    for operation in operations:
        k = rng.randrange(len(pieces))
        if operation == "replace":
            pieces[k] = rng.choice(HOSTILE)
        elif operation == "insert":
            pieces.insert(k, rng.choice(HOSTILE))
        else:  # every integer becomes huge: hypers, ranges, degrees
            pieces = [rng.choice(HOSTILE[:8]) if p.isdigit() else p for p in pieces]
    mutated = " ".join(pieces)
    assert_valid(check_source(mutated, name), {name: mutated})


def test_use_of_a_device_or_a_huge_file_is_e104(tmp_path, monkeypatch):
    import importlib

    resolve = importlib.import_module("mtdsl.lang.resolve")
    for path in ("/dev/zero", "/dev/urandom", str(tmp_path)):
        diagnostics = check_source(f'use "{path}"\n', "hostile.mt")
        assert [d.code for d in diagnostics] == ["E104"], (path, diagnostics)
    big = tmp_path / "big.mt"
    big.write_text("# comment\n" * 1000)
    monkeypatch.setattr(resolve, "MAX_SOURCE_BYTES", 5000)
    diagnostics = check_source(f'use "{big}"\n', "hostile.mt")
    assert [d.code for d in diagnostics] == ["E104"] and "larger than" in diagnostics[0].message
