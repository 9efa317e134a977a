"""`examples/equivariant_convolution.mt` against the same operation written with e3nn.

The e3nn side (`E3nnConvolution`, also used by `benchmarks/bench_convolution.py`)
is what a NequIP/MACE-style model does: per edge `p = (i -> j)`, the spherical
harmonics `Y(r_p)` (`e3nn.o3.spherical_harmonics`, normalize=True,
normalization="integral"), the radial weights `R_p = radial[p] @ wr` of every
path, one `e3nn.o3.TensorProduct` (`Y ⊗ h_j -> msg`, mode "uvv", per-edge
weights) and a torch `index_add_` of the edges into their centres.

With `irrep_normalization="component"` and `path_normalization="none"` the
product's coefficients are `sqrt(2L + 1) * wigner_3j(l1, l2, L)`, which is the
language's `cg` in the e3nn convention, so the program compiled with
`convention sph = "e3nn"` and e3nn give the same numbers (1e-10 here,
observed ~1e-15), with every backend `mtdsl.compile` accepts (interpreter,
cpp, llvm; one it refuses is skipped). With e3nn's defaults (`path_normalization="element"`) the
coefficients carry a further `1 / sqrt(N_L)`, `N_L` the number of paths into
`L`: scaling the weights by `sqrt(N_L)` undoes it (tested too, as is the
"uvu" form `TP(h_j, Y)` of MACE/NequIP, equal because l1 + l2 + L is even). The
metatensor-convention program is the same model after a change of basis:
`h_e3nn = B_l h`, `msg_e3nn = B_L msg` and `wr_e3nn[:, l1, l2, L] =
s(l1, l2, L) wr[:, l1, l2, L]` with `s = cg.e3nn_phase` (see docs/e3nn.md).
"""

from __future__ import annotations

import math
import pathlib

import ase
import ase.build
import numpy as np
import pytest
import torch
from e3nn import o3

import mtdsl
from mtdsl.math.cg import cg, e3nn_phase
from mtdsl.math.wigner import e3nn_change_of_basis

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
PROGRAM = EXAMPLES / "equivariant_convolution.mt"

# the program's fixed choices (its hypers are cutoff, lmax and width)
N_RADIAL = 8  # index k : range(8)
GTO_WIDTH = 0.5  # gto(r, k, width = 0.5)
SMOOTHING = 0.5  # cosine_cutoff(r, cutoff, width = 0.5)


def e3nn_program_text() -> str:
    """The program with `convention sph = "e3nn"` added after its `model` line (the file is not edited)."""
    lines = PROGRAM.read_text().splitlines(keepends=True)
    index = next(k for k, line in enumerate(lines) if line.startswith("model "))
    return "".join(lines[: index + 1] + ['convention sph = "e3nn"\n'] + lines[index + 1 :])


def write_e3nn_program(directory) -> pathlib.Path:
    path = pathlib.Path(directory) / "equivariant_convolution_e3nn.mt"
    path.write_text(e3nn_program_text())
    return path


def paths(lmax: int) -> list[tuple[int, int, int]]:
    """(l1, l2, L) with a non-zero coupling and even l1 + l2 + L, in the order of the weights."""
    return [(l1, l2, L) for l1 in range(lmax + 1) for l2 in range(lmax + 1)
            for L in range(abs(l1 - l2), min(l1 + l2, lmax) + 1) if (l1 + l2 + L) % 2 == 0]


class E3nnConvolution(torch.nn.Module):
    """The convolution with e3nn: `msg_i = sum_{p = (i -> j)} TP(Y(r_p), h_j; R_p)`.

    Features use e3nn's layout: `[atoms, sum_l width * (2l + 1)]`, channel-major
    within each `l` (`16x0e + 16x1o + 16x2e`). `wr` is the program's parameter
    `[k, l1, l2, L, q]`; `path_normalization="element"` (e3nn's default) or
    "path" divide by `sqrt(N_L)`, compensated in the weights.
    """

    def __init__(self, wr, lmax=2, width=16, cutoff=4.0, path_normalization="none", mode="uvv"):
        super().__init__()
        self.lmax, self.width, self.cutoff, self.mode = lmax, width, cutoff, mode
        self.paths = paths(lmax)
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)  # 1x0e + 1x1o + 1x2e
        self.irreps = o3.Irreps([(width, (l, (-1) ** l)) for l in range(lmax + 1)])
        if mode == "uvv":  # Y(r) x h: (l1, l2) in the program's order
            irreps_in = (self.irreps_sh, self.irreps)
            instructions = [(l1, l2, L, "uvv", True) for l1, l2, L in self.paths]
        elif mode == "uvu":  # h x Y(r), as MACE/NequIP write it: wigner_3j(l2, l1, L) = wigner_3j(l1, l2, L)
            irreps_in = (self.irreps, self.irreps_sh)  # for even l1 + l2 + L
            instructions = [(l2, l1, L, "uvu", True) for l1, l2, L in self.paths]
        else:
            raise ValueError(f"mode {mode!r}: 'uvv' or 'uvu'")
        self.tp = o3.TensorProduct(
            *irreps_in, self.irreps, instructions,
            irrep_normalization="component", path_normalization=path_normalization,
            internal_weights=False, shared_weights=False,
        )
        wr = np.asarray(wr)
        into = {L: sum(1 for path in self.paths if path[2] == L) for L in range(lmax + 1)}
        compensate = path_normalization in ("element", "path")  # both divide by sqrt(N_L) here (mul_in1 = 1)
        scale = {path: math.sqrt(into[path[2]]) if compensate else 1.0 for path in self.paths}
        # [k, path * width]: the weights of one edge are radial[p] @ this, in the order of the instructions
        self.register_buffer("wr", torch.from_numpy(np.concatenate(
            [scale[(l1, l2, L)] * wr[:, l1, l2, L, :] for l1, l2, L in self.paths], axis=1)))

    def radial(self, distances):
        """`gto(r, k, width = 0.5) * cosine_cutoff(r, cutoff, width = 0.5)`, `[edges, 8]`."""
        r = distances
        switch = self.cutoff - SMOOTHING
        fc = torch.where(r <= switch, torch.ones_like(r), 0.5 * (1 + torch.cos(math.pi * (r - switch) / SMOOTHING)))
        fc = torch.where(r >= self.cutoff, torch.zeros_like(r), fc)
        # r^0 .. r^7 by cumulative products (4x faster than `r ** arange(8)`: the baseline should be a good one)
        powers = torch.cumprod(torch.cat([torch.ones_like(r)[:, None], r[:, None].expand(-1, N_RADIAL - 1)], 1), 1)
        return powers * (torch.exp(-r**2 / (2 * GTO_WIDTH**2)) * fc)[:, None]

    def forward(self, vectors, first, second, h):
        """`vectors [E, 3]` from centre `first` to neighbour `second`; `h [atoms, irreps.dim]`."""
        weights = self.radial(torch.linalg.norm(vectors, dim=1)) @ self.wr
        sh = o3.spherical_harmonics(self.irreps_sh, vectors, normalize=True, normalization="integral")
        edges = self.tp(sh, h[second], weights) if self.mode == "uvv" else self.tp(h[second], sh, weights)
        return torch.zeros(h.shape[0], self.irreps.dim, dtype=h.dtype).index_add_(0, first, edges)


def edges(pairs):
    """The edge list of an `mtdsl.neighbors` list, as torch tensors (both sides see the same pairs)."""
    return (torch.from_numpy(np.ascontiguousarray(pairs.vectors, dtype=np.float64)),
            torch.from_numpy(np.asarray(pairs.first, dtype=np.int64)),
            torch.from_numpy(np.asarray(pairs.second, dtype=np.int64)))


def to_e3nn(h, lmax: int) -> torch.Tensor:
    """A TensorMap `h` (blocks `[atoms, 2l + 1, q]`) as e3nn features `[atoms, sum_l q (2l + 1)]`."""
    parts = [np.asarray(h.block(o3_lambda=l).values).transpose(0, 2, 1).reshape(len(h.block(o3_lambda=l).samples), -1)
             for l in range(lmax + 1)]
    return torch.from_numpy(np.ascontiguousarray(np.concatenate(parts, axis=1)))


def from_e3nn(features: torch.Tensor, lmax: int, width: int) -> dict[int, np.ndarray]:
    """e3nn features back to `{L: [atoms, 2L + 1, q]}`."""
    result, start = {}, 0
    values = features.detach().numpy()
    for L in range(lmax + 1):
        size = width * (2 * L + 1)
        result[L] = values[:, start : start + size].reshape(len(values), width, 2 * L + 1).transpose(0, 2, 1)
        start += size
    return result


def random_features(systems, lmax=2, width=16, seed=0):
    """A random `h` input: keys (o3_lambda, o3_sigma), samples (system, atom), o3_mu, q."""
    rng = np.random.default_rng(seed)
    samples = np.array([[s, a] for s, atoms in enumerate(systems) for a in range(len(atoms))], dtype=np.int32)
    blocks = [mtdsl.TensorBlock(rng.normal(size=(len(samples), 2 * l + 1, width)),
                                mtdsl.Labels(["system", "atom"], samples),
                                [mtdsl.Labels(["o3_mu"], np.arange(-l, l + 1).reshape(-1, 1))],
                                mtdsl.Labels.range("q", width))
              for l in range(lmax + 1)]
    keys = mtdsl.Labels(["o3_lambda", "o3_sigma"], np.array([[l, 1] for l in range(lmax + 1)]))
    return mtdsl.TensorMap(keys, blocks)


def change_basis(tensor, transform):
    """`transform(l, values)` applied to every block of a TensorMap keyed by o3_lambda."""
    return mtdsl.TensorMap(tensor.keys, [
        mtdsl.TensorBlock(transform(int(key["o3_lambda"]), np.asarray(block.values)), block.samples,
                          block.components, block.properties)
        for key, block in tensor.items()
    ])


def to_e3nn_basis(l, values):
    return np.einsum("mn,snq->smq", e3nn_change_of_basis(l), values)


def run_e3nn(systems, h, wr, lmax=2, width=16, cutoff=4.0, path_normalization="none", mode="uvv"):
    pairs = mtdsl.neighbors(systems, cutoff)
    convolution = E3nnConvolution(wr, lmax, width, cutoff, path_normalization, mode)
    with torch.no_grad():
        return from_e3nn(convolution(*edges(pairs), to_e3nn(h, lmax)), lmax, width)


# ---- structures ---------------------------------------------------------------------------------


def molecule():
    return ase.build.molecule("CH3CH2OH")


def crystal():
    atoms = ase.build.bulk("Si", cubic=True) * (2, 2, 2)  # 64 atoms, ~16 neighbours each within 4 Å
    atoms.rattle(0.05, seed=1)
    return atoms


def primitive():
    """A small non-orthogonal cell: many periodic images of each atom within the cutoff."""
    atoms = ase.build.bulk("Cu", "fcc", a=3.6)
    atoms.positions[0] += [0.05, -0.02, 0.03]
    return atoms


def mixed():
    """A molecule, a crystal and an isolated atom in one batch: system offsets, an atom without neighbours."""
    return [molecule(), primitive(), ase.Atoms("Ar", positions=[[0.0, 0.0, 0.0]])]


STRUCTURES = {"molecule": lambda: [molecule()], "crystal": lambda: [crystal()], "primitive": lambda: [primitive()],
              "batch": mixed}


BACKENDS = ["interpreter", "cpp", "llvm"]


def compile_or_skip(path, backend):
    try:
        return mtdsl.compile(path, backend=backend)
    except mtdsl.MtdslError as error:  # a backend this checkout does not have
        pytest.skip(f"backend {backend!r} is not available: {error}")


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(scope="module")
def e3nn_model(tmp_path_factory, backend):
    return compile_or_skip(write_e3nn_program(tmp_path_factory.mktemp("program")), backend)


@pytest.fixture(scope="module")
def metatensor_model(backend):
    return compile_or_skip(PROGRAM, backend)


@pytest.fixture(autouse=True, scope="module")
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds its wigner_3j buffers in the default dtype
    yield
    torch.set_default_dtype(previous)


def random_wr(model, seed):
    wr = np.random.default_rng(seed).normal(size=model.parameters["wr"].shape)
    model.parameters["wr"] = wr
    return wr


def assert_equal(msg, expected, lmax=2, tolerance=1e-10, systems=None):
    """`msg` equals e3nn's `expected` (rows: the batch's atoms). With `systems`: `msg` has exactly
    the atoms with a neighbour within the cutoff (LANGUAGE.md section 3: an empty sum over pairs
    is absent), and e3nn's rows of the others are zero."""
    assert msg.keys.names == ["o3_lambda", "o3_sigma"]
    assert msg.keys.array.tolist() == [[L, 1] for L in range(lmax + 1)]
    if systems is not None:
        offsets = np.cumsum([0] + [len(atoms) for atoms in systems])
        with_neighbours = np.unique(np.asarray(mtdsl.neighbors(systems, 4.0).first, dtype=np.int64))
        absent = np.setdiff1d(np.arange(offsets[-1]), with_neighbours)
        for L in range(lmax + 1):
            samples = msg.block(o3_lambda=L).samples
            rows = offsets[np.asarray(samples.column("system"), dtype=np.int64)] + np.asarray(
                samples.column("atom"), dtype=np.int64)
            assert rows.tolist() == with_neighbours.tolist()
            assert np.all(expected[L][absent] == 0.0)
        expected = {L: expected[L][with_neighbours] for L in range(lmax + 1)}
    for L in range(lmax + 1):
        values = np.asarray(msg.block(o3_lambda=L).values)
        assert values.shape == expected[L].shape
        np.testing.assert_allclose(values, expected[L], rtol=0, atol=tolerance * max(1.0, np.abs(expected[L]).max()))


# ---- tests --------------------------------------------------------------------------------------


def test_the_program_text_only_gains_the_convention_line():
    text = e3nn_program_text().splitlines()
    assert text[1] == 'convention sph = "e3nn"'
    assert text[:1] + text[2:] == PROGRAM.read_text().splitlines()


@pytest.mark.parametrize("path_normalization", ["none", "element"])
def test_tensor_product_coefficients_are_cg_in_the_e3nn_convention(path_normalization):
    """The coefficients of the TensorProduct, read off with unit inputs: `sqrt(2L + 1) wigner_3j` = `cg`."""
    lmax, width = 2, 1
    convolution = E3nnConvolution(np.ones((N_RADIAL, 3, 3, 3, width)), lmax, width, 4.0, path_normalization)
    tp = convolution.tp
    n1, n2 = tp.irreps_in1.dim, tp.irreps_in2.dim
    x1 = torch.eye(n1)[:, None, :].expand(n1, n2, n1).reshape(-1, n1)
    x2 = torch.eye(n2)[None, :, :].expand(n1, n2, n2).reshape(-1, n2)
    weights = torch.ones(n1 * n2, tp.weight_numel)
    with torch.no_grad():
        table = tp(x1, x2, weights).reshape(n1, n2, -1).numpy()
    count = {L: sum(1 for p in convolution.paths if p[2] == L) for L in range(lmax + 1)}
    for L in range(lmax + 1):
        expected = np.zeros((n1, n2, 2 * L + 1))
        for l1, l2, out in convolution.paths:
            if out == L:
                expected[l1 * l1 : (l1 + 1) ** 2, l2 * l2 : (l2 + 1) ** 2] += cg(l1, l2, L, "e3nn")
        if path_normalization == "element":
            expected /= math.sqrt(count[L])
        np.testing.assert_allclose(table[:, :, L * L : (L + 1) ** 2], expected, rtol=0, atol=1e-14)
    for l1, l2, L in paths(3):
        np.testing.assert_allclose(math.sqrt(2 * L + 1) * o3.wigner_3j(l1, l2, L, dtype=torch.float64).numpy(),
                                   cg(l1, l2, L, "e3nn"), rtol=0, atol=1e-14)


@pytest.mark.parametrize("structure", sorted(STRUCTURES))
def test_e3nn_convention_program_equals_e3nn(e3nn_model, structure):
    systems = STRUCTURES[structure]()
    h = random_features(systems, seed=2)  # in e3nn's basis, as the program's convention says
    wr = random_wr(e3nn_model, seed=3)
    msg = e3nn_model(systems, h=h)["msg"]
    assert_equal(msg, run_e3nn(systems, h, wr), systems=systems)


@pytest.mark.parametrize("path_normalization, mode",
                         [("element", "uvv"), ("path", "uvv"), ("none", "uvu"), ("element", "uvu")])
def test_e3nn_variants(e3nn_model, path_normalization, mode):
    """e3nn's default path normalization with rescaled weights; h first ("uvu", as MACE writes it)."""
    systems = [molecule()]
    h = random_features(systems, seed=4)
    wr = random_wr(e3nn_model, seed=5)
    assert_equal(e3nn_model(systems, h=h)["msg"], run_e3nn(systems, h, wr, path_normalization=path_normalization,
                                                            mode=mode))


@pytest.mark.parametrize("structure", ["molecule", "primitive"])
def test_metatensor_program_is_the_e3nn_program_in_another_basis(e3nn_model, metatensor_model, structure):
    """`h -> B_l h`, `msg -> B_L msg`, `wr[:, l1, l2, L] -> s(l1, l2, L) wr[:, l1, l2, L]`."""
    systems = STRUCTURES[structure]()
    h = random_features(systems, seed=6)
    wr = random_wr(metatensor_model, seed=7)
    msg = metatensor_model(systems, h=h)["msg"]

    phases = np.array([[[e3nn_phase(l1, l2, L) for L in range(3)] for l2 in range(3)] for l1 in range(3)])
    e3nn_model.parameters["wr"] = wr * phases[None, :, :, :, None]
    msg_e3nn = e3nn_model(systems, h=change_basis(h, to_e3nn_basis))["msg"]
    assert_equal(msg_e3nn, {L: to_e3nn_basis(L, np.asarray(msg.block(o3_lambda=L).values)) for L in range(3)})
    # and the e3nn implementation agrees with both
    assert_equal(msg_e3nn, run_e3nn(systems, change_basis(h, to_e3nn_basis), e3nn_model.parameters["wr"]))


def test_the_phases_matter(e3nn_model, metatensor_model):
    """Without the path signs the two programs differ: the change of basis alone is not enough."""
    systems = [molecule()]
    h = random_features(systems, seed=8)
    wr = random_wr(metatensor_model, seed=9)
    e3nn_model.parameters["wr"] = wr
    msg = metatensor_model(systems, h=h)["msg"]
    msg_e3nn = e3nn_model(systems, h=change_basis(h, to_e3nn_basis))["msg"]
    difference = max(np.abs(np.asarray(msg_e3nn.block(o3_lambda=L).values)
                            - to_e3nn_basis(L, np.asarray(msg.block(o3_lambda=L).values))).max() for L in range(3))
    assert difference > 1e-3


def test_float32_program_equals_e3nn_in_float64(backend, tmp_path):
    """In float32 the program stays within 1e-5 of e3nn's float64 result (the language's float32 tolerance)."""
    try:
        model = mtdsl.compile(write_e3nn_program(tmp_path), backend=backend, dtype=np.float32)
    except mtdsl.MtdslError as error:
        pytest.skip(f"backend {backend!r} is not available: {error}")
    systems = [molecule(), primitive()]
    h = random_features(systems, seed=10)
    wr = random_wr(model, seed=11)
    h32 = mtdsl.TensorMap(h.keys, [mtdsl.TensorBlock(b.values.astype(np.float32), b.samples, b.components,
                                                     b.properties) for b in h.blocks()])
    msg = model(systems, h=h32)["msg"]
    assert all(np.asarray(block.values).dtype == np.float32 for block in msg.blocks())
    assert_equal(msg, run_e3nn(systems, h, wr), tolerance=1e-5)
