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
