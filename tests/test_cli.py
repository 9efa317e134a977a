"""The `mtdsl` command line: check and fmt, exit statuses, one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mtdsl.cli import main
from mtdsl.cli.app import COMMANDS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_check_clean_program_exits_0(capsys):
    assert main(["check", str(EXAMPLES / "soap_energy.mt")]) == 0
    out = capsys.readouterr()
    assert "ok" in out.out and out.err == ""


def test_check_program_with_errors_exits_1_and_renders(tmp_path, capsys):
    path = tmp_path / "bad.mt"
    path.write_text("hyper n_radial = 3\nlet y = n_radail\nlet z = undefined_too\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2:9: error[E101]" in err and f"{path}:3:9: error[E101]" in err
    assert "^^^^^^^^" in err and "did you mean `n_radial`?" in err
    assert "\033[" not in err  # not a terminal


def test_check_with_set_overrides(tmp_path, capsys):
    path = tmp_path / "h.mt"
    path.write_text("hyper cutoff = 5.0\n")
    assert main(["check", str(path), "--set", "cutoff=4.5"]) == 0
    assert main(["check", str(path), "--set", "cutoff=abc"]) == 1
    assert "E103" in capsys.readouterr().err
    assert main(["check", str(path), "--set", "nonsense"]) == 2


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["check"]) == 2
    assert main(["frobnicate"]) == 2
    assert "usage" in capsys.readouterr().err


def test_missing_file_is_one_line(capsys, tmp_path):
    assert main(["check", str(tmp_path / "nothere.mt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err and "Traceback" not in err


def test_fmt_prints_canonical_source(capsys):
    assert main(["fmt", str(EXAMPLES / "spherical_expansion.mt")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model spherical_expansion\n") and "tensor rho\n    keys       (o3_lambda = l" in out


def test_fmt_in_place_is_atomic_and_idempotent(tmp_path, capsys):
    path = tmp_path / "m.mt"
    shutil.copy(EXAMPLES / "equivariant_convolution.mt", path)
    assert main(["fmt", "--in-place", str(path)]) == 0
    first = path.read_text()
    assert main(["fmt", "--check", str(path)]) == 0
    assert main(["fmt", "-i", str(path)]) == 0
    assert path.read_text() == first
    assert [p.name for p in tmp_path.iterdir()] == ["m.mt"]
    assert main(["check", str(path)]) == 0


def test_fmt_keeps_comments(tmp_path, capsys):
    path = tmp_path / "c.mt"
    path.write_text("# header\nhyper a = 1 # the answer\n\n# about b\nhyper b = 2\n")
    assert main(["fmt", str(path)]) == 0
    out = capsys.readouterr().out
    assert "# header" in out and "# the answer" in out and "# about b" in out
    assert out.index("# about b") < out.index("hyper b")


def test_fmt_refuses_syntax_errors(tmp_path, capsys):
    path = tmp_path / "s.mt"
    path.write_text("let = 1\n")
    assert main(["fmt", "-i", str(path)]) == 1
    assert path.read_text() == "let = 1\n"
    assert "E001" in capsys.readouterr().err


def test_commands_are_a_registration_table():
    assert {command.name for command in COMMANDS} >= {"check", "fmt"}


@pytest.mark.parametrize("argv", [["--help"], ["check", "--help"]])
def test_help(argv, capsys):
    assert main(argv) == 0
    assert "usage" in capsys.readouterr().out


def test_console_entry_point_runs_as_module():
    result = subprocess.run([sys.executable, "-m", "mtdsl.cli", "check", str(EXAMPLES / "spherical_expansion.mt")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_fmt_and_check_a_long_flat_sum(tmp_path, capsys):
    path = tmp_path / "long.mt"
    path.write_text("hyper x = 1.0\nlet y = " + " + ".join(["x"] * 900) + "\n")
    assert main(["check", "-q", str(path)]) == 0
    assert main(["fmt", "--in-place", str(path)]) == 0
    assert main(["check", "-q", str(path)]) == 0


def test_check_numeric_runs_the_model_rotated_and_inverted(capsys):
    assert main(["check", "--numeric", str(EXAMPLES / "spherical_expansion.mt"), "--set", "max_angular=2",
                 "--set", "n_radial=2"]) == 0
    assert "numeric check ok" in capsys.readouterr().out


@pytest.mark.parametrize("program", ["equivariant_convolution.mt", "soap_energy.mt"])
def test_check_numeric_with_random_inputs_and_parameters(program, capsys):
    # tensormap inputs are drawn from their declaration, parameters at random
    assert main(["check", "--numeric", str(EXAMPLES / program), "--set", "max_angular=2",
                 "--set", "n_radial=2"] if program == "soap_energy.mt" else
                ["check", "--numeric", str(EXAMPLES / program)]) == 0
    assert "numeric check ok" in capsys.readouterr().out


def test_random_inputs_follow_the_declaration():
    import mtdsl
    from mtdsl.testing import random_inputs, random_systems

    model = mtdsl.compile(EXAMPLES / "equivariant_convolution.mt", backend="interpreter")
    systems = random_systems()
    h = random_inputs(model.module, systems)["h"]
    assert h.keys.names == ["o3_lambda", "o3_sigma"]
    assert sorted(set(h.keys.column("o3_lambda").tolist())) == [0, 1, 2]
    block = h.block(o3_lambda=2, o3_sigma=1)
    assert block.samples.names == ["system", "atom"] and len(block.samples) == sum(len(s.types) for s in systems)
    assert block.components[0].array[:, 0].tolist() == [-2, -1, 0, 1, 2]
    assert len(block.properties) == 16


def test_model_commands_are_registered():
    from mtdsl.cli.app import all_commands

    assert [c.name for c in all_commands()][:2] == ["check", "fmt"]


def test_check_json_output(tmp_path, capsys):
    import json

    path = tmp_path / "bad.mt"
    path.write_text("hyper n_radial = 3\nlet y = n_radail\n")
    assert main(["check", "--format", "json", str(path)]) == 1
    [diagnostic] = json.loads(capsys.readouterr().out)
    assert (diagnostic["code"], diagnostic["line"], diagnostic["col"]) == ("E101", 2, 9)
    assert diagnostic["hint"] == "did you mean `n_radial`?"


def test_statement_keyword_typo_is_suggested(tmp_path, capsys):
    path = tmp_path / "typo.mt"
    path.write_text("tensro t samples () = 1.0\n")
    assert main(["check", str(path)]) == 1
    assert "did you mean `tensor`?" in capsys.readouterr().err


def test_check_several_files(tmp_path, capsys):
    bad = tmp_path / "bad.mt"
    bad.write_text("let y = nothing\n")
    files = [str(EXAMPLES / "spherical_expansion.mt"), str(bad), str(tmp_path / "missing.mt")]
    assert main(["check", *files]) == 1
    captured = capsys.readouterr()
    assert "spherical_expansion.mt: ok" in captured.out
    assert "E101" in captured.err and "no such file" in captured.err
    assert main(["fmt", str(bad), str(bad)]) == 2


def test_check_reports_a_gradient_that_cannot_exist_with_its_position(tmp_path, capsys):
    path = tmp_path / "constant.mt"
    path.write_text("input S : systems\npairs P = neighbors(S, cutoff = 3.0)\nindex i : atoms(S)\n"
                    "tensor t\n    samples (i)\n  = sum(p in P.from(i)) 1.0\noutput t with gradients(positions)\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:7:8: error[E309]: output t does not depend on the positions" in err


def test_check_numeric_accepts_cartesian_rank_one_and_two_outputs(tmp_path, capsys):
    path = tmp_path / "cartesian.mt"
    path.write_text("input S : systems\npairs P = neighbors(S, cutoff = 3.0)\nindex i : atoms(S)\n"
                    "index x, y : xyz\n"
                    "tensor v\n    samples (i)\n    components (xyz = x)\n"
                    "  = sum(p in P.from(i)) P.vector[p, x] * exp(-P.distance[p])\n"
                    "tensor t\n    samples (i)\n    components (xyz_1 = x, xyz_2 = y)\n"
                    "  = sum(p in P.from(i)) P.vector[p, x] * P.vector[p, y]\n"
                    "output v\noutput t\n")
    assert main(["check", "--numeric", str(path)]) == 0
    assert "numeric check ok" in capsys.readouterr().out


def test_check_numeric_rejects_a_wrong_cartesian_rank_two_output(tmp_path, capsys):
    """A rank-2 output whose second axis is a fixed direction (not a tensor): refused with the
    component's position (the static check, E306, before the numeric run), exit 1."""
    path = tmp_path / "wrong.mt"
    path.write_text("input S : systems\npairs P = neighbors(S, cutoff = 3.0)\nindex i : atoms(S)\n"
                    "index x, y : xyz\n"
                    "tensor t\n    samples (i)\n    components (xyz_1 = x, xyz_2 = y)\n"
                    "  = sum(p in P.from(i)) P.vector[p, x] * (y == 0 ? P.distance[p] : 0.0)\n"
                    "output t\n")
    assert main(["check", "--numeric", str(path)]) == 1
    captured = capsys.readouterr()
    assert "E306" in captured.err and ":7:28:" in captured.err and "numeric check ok" not in captured.out
