"""Tests of mtdsl.io.structures.read_structures.

Files are written into tmp_path by ASE where ASE has a writer (extxyz, POSCAR,
LAMMPS data) and by the small writers below otherwise (OUTCAR, vasprun.xml,
LAMMPS dumps: ASE only reads them); either way ASE's reader parses them.
"""

from pathlib import Path

import ase
import ase.build
import ase.io
import numpy as np
import pytest

from mtdsl.io.structures import StructureError, read_structures
from mtdsl.systems import System

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"


def silicon(seed=0):
    atoms = ase.build.bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=seed)
    return atoms


def silicon_oxide(seed=0):
    """Si and O in an orthorhombic cell, atoms grouped by species (as VASP does)."""
    atoms = ase.Atoms(
        "Si2O4",
        scaled_positions=[
            [0.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.3, 0.3, 0.0],
            [0.7, 0.7, 0.0],
            [0.8, 0.2, 0.5],
            [0.2, 0.8, 0.5],
        ],
        cell=[4.4, 4.4, 2.9],
        pbc=True,
    )
    atoms.rattle(0.02, seed=seed)
    return atoms


def assert_same_structure(system, atoms, atol=1e-6):
    assert isinstance(system, System)
    np.testing.assert_array_equal(system.types, atoms.numbers)
    np.testing.assert_allclose(system.positions, atoms.positions, atol=atol)
    np.testing.assert_allclose(system.cell, atoms.cell.array, atol=atol)
    np.testing.assert_array_equal(system.pbc, atoms.pbc)


# -- writers for formats ASE only reads ----------------------------------------------


def write_outcar(path, frames):
    symbols = list(dict.fromkeys(frames[0].get_chemical_symbols()))
    counts = [frames[0].get_chemical_symbols().count(s) for s in symbols]
    lines = [f" POTCAR:    PAW_PBE {s} 05Jan2001" for s in symbols * 2]
    lines.append("   ions per type =  " + "  ".join(str(c) for c in counts))
    for step, atoms in enumerate(frames, start=1):
        lines.append(f"------------------------ Iteration {step:6d}(   1)  ------------------------")
        lines.append("      direct lattice vectors                 reciprocal lattice vectors")
        for vector in atoms.cell.array:
            lines.append("    " + " ".join(f"{x:14.9f}" for x in vector) + "    0.0 0.0 0.0")
        lines.append(" POSITION                                       TOTAL-FORCE (eV/Angst)")
        lines.append(" " + "-" * 83)
        for position in atoms.positions:
            lines.append("   " + " ".join(f"{x:12.8f}" for x in position) + "   0.0 0.0 0.0")
        lines.append(" " + "-" * 83)
        lines.append("  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)")
        lines.append("  ---------------------------------------------------")
        lines.append(f"  free  energy   TOTEN  =       {-1.0 * step:.8f} eV")
        lines.append("")
        lines.append(f"  energy  without entropy=  {-1.0 * step:.8f}  energy(sigma->0) =  {-1.0 * step:.8f}")
        lines.append("")
    Path(path).write_text("\n".join(lines) + "\n")


def _xml_structure(atoms, name=None):
    attribute = f' name="{name}"' if name else ""
    basis = "\n".join(f"    <v> {' '.join(f'{x:.10f}' for x in v)} </v>" for v in atoms.cell.array)
    positions = "\n".join(
        f"   <v> {' '.join(f'{x:.10f}' for x in p)} </v>" for p in atoms.get_scaled_positions(wrap=False)
    )
    return (
        f' <structure{attribute}>\n  <crystal>\n   <varray name="basis">\n{basis}\n'
        f'   </varray>\n  </crystal>\n  <varray name="positions">\n{positions}\n'
        "  </varray>\n </structure>\n"
    )


def write_vasprun(path, frames):
    species = "\n".join(
        f"    <rc><c>{s}</c><c>1</c></rc>" for s in frames[0].get_chemical_symbols()
    )
    text = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<modeling>\n <atominfo>\n'
        f"  <atoms> {len(frames[0])} </atoms>\n  <array name=\"atoms\">\n   <set>\n"
        f"{species}\n   </set>\n  </array>\n </atominfo>\n"
        ' <kpoints>\n  <varray name="kpointlist"><v> 0.0 0.0 0.0 </v></varray>\n'
        '  <varray name="weights"><v> 1.0 </v></varray>\n </kpoints>\n'
    )
    text += _xml_structure(frames[0], "initialpos")
    energy = (
        '  <energy><i name="e_fr_energy"> -1.0 </i><i name="e_wo_entrp"> -1.0 </i>'
        '<i name="e_0_energy"> -1.0 </i></energy>\n'
    )
    for atoms in frames:
        text += " <calculation>\n  <scstep>\n" + energy + "  </scstep>\n"
        text += _xml_structure(atoms).replace("\n ", "\n  ") + energy + " </calculation>\n"
    text += "</modeling>\n"
    Path(path).write_text(text)


def write_lammps_dump(path, frames, element_column=False, type_of=None):
    """An orthorhombic LAMMPS text dump (``type_of``: symbol -> LAMMPS type)."""
    lines = []
    for step, atoms in enumerate(frames):
        bounds = " ".join("pp" if p else "ff" for p in atoms.pbc)
        lines += ["ITEM: TIMESTEP", str(step), "ITEM: NUMBER OF ATOMS", str(len(atoms))]
        lines.append(f"ITEM: BOX BOUNDS {bounds}")
        lines += [f"0.0 {length:.10f}" for length in atoms.cell.lengths()]
        columns = "id element x y z" if element_column else "id type x y z"
        lines.append(f"ITEM: ATOMS {columns}")
        for index, (symbol, position) in enumerate(
            zip(atoms.get_chemical_symbols(), atoms.positions), start=1
        ):
            kind = symbol if element_column else str(type_of[symbol])
            lines.append(f"{index} {kind} " + " ".join(f"{x:.10f}" for x in position))
    Path(path).write_text("\n".join(lines) + "\n")


# -- formats ----------------------------------------------------------------------


def test_extxyz_frames_and_sources(tmp_path):
    frames = [silicon(seed) for seed in range(4)]
    frames.append(ase.build.molecule("CH4"))
    path = tmp_path / "frames.xyz"
    ase.io.write(path, frames, format="extxyz")
    systems = read_structures(path)
    assert len(systems) == 5
    for index, (system, atoms) in enumerate(zip(systems, frames)):
        assert_same_structure(system, atoms)
        assert system.source == f"{path}:{index}"
    assert not systems[4].pbc.any()


@pytest.mark.parametrize(
    ("index", "frames"),
    [
        (":", [0, 1, 2, 3]),
        ("1:", [1, 2, 3]),
        ("::2", [0, 2]),
        (slice(1, 3), [1, 2]),
        (2, [2]),
        ("2", [2]),
        (-1, [3]),
        ("-2:", [2, 3]),
        ("::-1", [3, 2, 1, 0]),
    ],
)
def test_frame_selection(tmp_path, index, frames):
    path = tmp_path / "frames.xyz"
    atoms = [silicon(seed) for seed in range(4)]
    ase.io.write(path, atoms)
    systems = read_structures(path, index=index)
    assert [s.source for s in systems] == [f"{path}:{f}" for f in frames]
    for system, frame in zip(systems, frames):
        assert_same_structure(system, atoms[frame])


def test_frame_selection_errors(tmp_path):
    path = tmp_path / "frames.xyz"
    ase.io.write(path, [silicon(0), silicon(1)])
    with pytest.raises(StructureError, match=r"frames.xyz: no frame -5, the file has 2"):
        read_structures(path, index=-5)
    with pytest.raises(StructureError, match=r"frames.xyz: no frame 7"):
        read_structures(path, index=7)
    with pytest.raises(StructureError, match=r"frames.xyz: invalid frame index 'a:b'"):
        read_structures(path, index="a:b")


@pytest.mark.parametrize("name", ["POSCAR", "CONTCAR", "si.vasp", "CONTCAR_relaxed"])
def test_poscar(tmp_path, name):
    atoms = silicon_oxide()
    path = tmp_path / name
    ase.io.write(path, atoms, format="vasp", direct=True)
    (system,) = read_structures(path)
    assert_same_structure(system, atoms)
    assert system.source == f"{path}:0"
    (last,) = read_structures(path, index=-1)
    assert last.source == f"{path}:0"
    with pytest.raises(StructureError, match=f"^{path}: no frame 1, the file has 1$"):
        read_structures(path, index=1)


def test_outcar(tmp_path):
    frames = [silicon_oxide(seed) for seed in range(3)]
    path = tmp_path / "OUTCAR"
    write_outcar(path, frames)
    systems = read_structures(path)
    assert [s.source for s in systems] == [f"{path}:{i}" for i in range(3)]
    for system, atoms in zip(systems, frames):
        assert_same_structure(system, atoms)
    (last,) = read_structures(path, index=-1)
    assert last.source == f"{path}:2"


def test_vasprun(tmp_path):
    frames = [silicon_oxide(seed) for seed in range(2)]
    path = tmp_path / "vasprun.xml"
    write_vasprun(path, frames)
    systems = read_structures(path)
    assert len(systems) == 2
    for system, atoms in zip(systems, frames):
        assert_same_structure(system, atoms)


@pytest.mark.parametrize("atom_style", ["atomic", "charge", "full"])
def test_lammps_data(tmp_path, atom_style):
    atoms = silicon_oxide()
    path = tmp_path / "sio2.data"
    ase.io.write(path, atoms, format="lammps-data", atom_style=atom_style, specorder=["O", "Si"])
    for type_map in ({1: "O", 2: "Si"}, ["O", "Si"], {1: 8, 2: 14}):
        (system,) = read_structures(path, atom_style=atom_style, type_map=type_map)
        assert_same_structure(system, atoms)
        assert system.source == f"{path}:0"


def test_lammps_data_with_explicit_format(tmp_path):
    atoms = silicon()
    path = tmp_path / "structure.txt"
    ase.io.write(path, atoms, format="lammps-data", atom_style="atomic")
    (system,) = read_structures(path, format="lammps", atom_style="atomic", type_map=["Si"])
    assert_same_structure(system, atoms)


def test_lammps_dump(tmp_path):
    frames = [silicon_oxide(seed) for seed in range(3)]
    path = tmp_path / "run.lammpstrj"
    write_lammps_dump(path, frames, type_of={"Si": 1, "O": 2})
    systems = read_structures(path, type_map={1: "Si", 2: "O"})
    assert [s.source for s in systems] == [f"{path}:{i}" for i in range(3)]
    for system, atoms in zip(systems, frames):
        assert_same_structure(system, atoms)

    molecule = ase.build.molecule("H2O", vacuum=3.0)
    path = tmp_path / "water.dump"
    write_lammps_dump(path, [molecule], element_column=True)
    (system,) = read_structures(path)
    assert_same_structure(system, molecule)
    assert not system.pbc.any()


def test_shipped_structures():
    water = read_structures(DATA / "water.xyz")
    assert len(water) == 2 and not water[0].pbc.any()
    assert sorted(set(water[0].types.tolist())) == [1, 8]
    (silicon_system,) = read_structures(DATA / "silicon.xyz")
    assert silicon_system.pbc.all() and set(silicon_system.types.tolist()) == {14}
    (mixed,) = read_structures(DATA / "mixed.xyz")
    assert mixed.pbc.all() and sorted(set(mixed.types.tolist())) == [8, 22, 38]
    for path in DATA.glob("*.xyz"):
        assert path.stat().st_size < 8000


def test_float32(tmp_path):
    path = tmp_path / "si.xyz"
    ase.io.write(path, silicon())
    (system,) = read_structures(path, dtype=np.float32)
    assert system.positions.dtype == np.float32 and system.cell.dtype == np.float32


# -- errors --------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nothing.xyz"
    with pytest.raises(StructureError, match=f"^{path}: no such file$"):
        read_structures(path)
    with pytest.raises(StructureError, match="is a directory, not a structure file"):
        read_structures(tmp_path)


def test_unknown_element(tmp_path):
    path = tmp_path / "bad.xyz"
    path.write_text("2\n\nXx 0 0 0\nH 0 0 1\n")
    with pytest.raises(StructureError, match=f"^{path}: unknown element 'Xx'$"):
        read_structures(path)
    path = tmp_path / "dummy.xyz"
    ase.io.write(path, ase.Atoms("XH", positions=[[0, 0, 0], [0, 0, 1]]))
    with pytest.raises(
        StructureError, match=rf"^{path}:0: unknown element \(atomic number 0\) for atom 0$"
    ):
        read_structures(path)


def test_unparseable(tmp_path):
    path = tmp_path / "bad.xyz"
    path.write_text("2\n\nH 0 0 zero\nH 0 0 1\n")
    with pytest.raises(StructureError, match=f"^{path}: cannot read as extxyz: ValueError: .*'zero'"):
        read_structures(path)
    path = tmp_path / "POSCAR"
    path.write_text("not a poscar\n")
    with pytest.raises(StructureError, match=f"^{path}: cannot read as vasp: "):
        read_structures(path)
    path = tmp_path / "empty.xyz"
    path.write_text("")
    with pytest.raises(StructureError, match=f"^{path}: no structure found"):
        read_structures(path)


def test_error_messages_are_one_line(tmp_path):
    path = tmp_path / "OUTCAR"
    path.write_text("garbage\n" * 5)
    with pytest.raises(StructureError) as error:
        read_structures(path)
    message = str(error.value)
    assert message.startswith(f"{path}: cannot read as vasp-out")
    assert "\n" not in message and len(message) < 400


def test_unknown_format(tmp_path):
    path = tmp_path / "structure.unknown"
    path.write_text("hello\n")
    with pytest.raises(StructureError, match="cannot tell the file format .* pass format="):
        read_structures(path)
    path.write_text("1\n\nH 0 0 0\n")
    with pytest.raises(StructureError, match=f"^{path}: unknown format 'nonsense'$"):
        read_structures(path, format="nonsense")
    (system,) = read_structures(path, format="xyz")
    assert system.types.tolist() == [1]


def test_lammps_data_needs_style_and_type_map(tmp_path):
    path = tmp_path / "si.data"
    ase.io.write(path, silicon(), format="lammps-data", atom_style="atomic")
    with pytest.raises(StructureError, match=f"^{path}: LAMMPS data files need atom_style and type_map, e.g. "):
        read_structures(path)
    with pytest.raises(StructureError, match=f"^{path}: LAMMPS data files need type_map, e.g. "):
        read_structures(path, atom_style="atomic")
    with pytest.raises(StructureError, match=f"^{path}: LAMMPS data files need atom_style, e.g. "):
        read_structures(path, type_map=["Si"])
    with pytest.raises(StructureError, match=f"^{path}: LAMMPS atom type 1 is not in type_map$"):
        read_structures(path, atom_style="atomic", type_map={2: "Si"})
    with pytest.raises(StructureError, match=f"^{path}: unknown element 'Qq' in type_map$"):
        read_structures(path, atom_style="atomic", type_map={1: "Qq"})
    with pytest.raises(StructureError, match=f"^{path}: type_map must map LAMMPS types"):
        read_structures(path, atom_style="atomic", type_map="Si")
    with pytest.raises(StructureError, match=f"^{path}: cannot read as lammps-data"):
        read_structures(path, atom_style="full", type_map=["Si"])


def test_lammps_dump_needs_type_map(tmp_path):
    path = tmp_path / "run.dump"
    write_lammps_dump(path, [silicon_oxide()], type_of={"Si": 1, "O": 2})
    with pytest.raises(StructureError, match=f"^{path}: LAMMPS dumps without an element column need type_map"):
        read_structures(path)
    with pytest.raises(StructureError, match=f"^{path}:0: LAMMPS atom type 2 is not in type_map$"):
        read_structures(path, type_map={1: "Si"})
