"""Spatial domains of one system: which atoms each domain owns, and its ghost atoms.

Coordinates: each atom's fractional coordinates `u = r B^-1` in a box `B` whose rows are the
cell vectors along periodic directions (and non-zero cell vectors along the others); a direction
without a cell vector gets a unit vector normal to the others. Along a periodic direction `u` is
wrapped into [0, 1) and split in `n` equal slabs; along an open one, [min u, max u] is.

Ghosts: every periodic image of every atom (the atom's position plus whole cell vectors) that is
within the halo of the domain's box, but not one of its owned atoms. The halo is widened to
fractional units by each direction's plane spacing (`halo * |column a of B^-1|`), so the
widened box holds every point within `halo` of the domain: a few more ghosts than strictly
needed, never fewer. Along a periodic direction a domain thinner than the halo just takes its
ghosts from further domains and further images (a box wider than the cell included).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from mtdsl.errors import MtdslError


@dataclass
class Domain:
    """One domain: `atoms[:n_owned]` its owned atoms (indices in the system, increasing), then
    its ghosts; `shifts[k]` the cell translation (integers, along the cell vectors) of atom
    `atoms[k]` (0 for owned atoms)."""

    index: tuple[int, int, int]
    atoms: np.ndarray
    shifts: np.ndarray
    n_owned: int

    @property
    def n_ghosts(self) -> int:
        return len(self.atoms) - self.n_owned


def box(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """The box `B` whose rows span the fractional coordinates (module docstring)."""
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    B = cell.copy()
    for a in range(3):
        if pbc[a] and np.linalg.norm(cell[a]) == 0.0:
            raise MtdslError(f"the system is periodic along direction {a} but its cell vector {a} is zero")
    for a in range(3):
        if np.linalg.norm(B[a]) == 0.0:
            b, c = (a + 1) % 3, (a + 2) % 3
            normal = np.cross(B[b], B[c])
            if np.linalg.norm(normal) == 0.0:
                normal = np.eye(3)[a] if np.linalg.norm(B[b]) == np.linalg.norm(B[c]) == 0.0 \
                    else _orthogonal(B[b] if np.linalg.norm(B[b]) else B[c], a)
            B[a] = normal / np.linalg.norm(normal)
    if abs(np.linalg.det(B)) < 1e-12 * max(np.abs(B).max(), 1.0) ** 3:
        raise MtdslError("the cell vectors are linearly dependent: cannot split the system into domains")
    return B


def _orthogonal(vector: np.ndarray, preferred: int) -> np.ndarray:
    """A vector orthogonal to `vector`, close to Cartesian axis `preferred` when possible."""
    for axis in (preferred, (preferred + 1) % 3, (preferred + 2) % 3):
        candidate = np.eye(3)[axis] - vector * (vector[axis] / vector.dot(vector))
        if np.linalg.norm(candidate) > 1e-6:
            return candidate
    raise MtdslError("cannot build a box for this cell")  # pragma: no cover - unreachable in 3D


@dataclass
class Decomposition:
    """The domains of a system, and how to place their atoms: atom `i` seen with cell shift `t`
    sits at `positions[i] + (t - wraps[i]) @ box` (owned atoms at `t = 0`: wrapped into the cell
    along periodic directions, their neighbours' images placed consistently)."""

    domains: list
    box: np.ndarray
    wraps: np.ndarray

    def positions(self, positions: np.ndarray, domain: Domain) -> np.ndarray:
        moves = (domain.shifts - self.wraps[domain.atoms]).astype(np.float64)
        return np.asarray(positions, dtype=np.float64)[domain.atoms] + moves @ self.box


def decompose(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, grid, halo: float) -> Decomposition:
    """The domains of a `grid = (nx, ny, nz)` split, each with its ghosts within `halo`."""
    grid = tuple(int(n) for n in grid)
    if len(grid) != 3 or min(grid) < 1:
        raise MtdslError(f"grid must be three positive numbers of domains (nx, ny, nz), got {grid}")
    if not np.isfinite(halo) or halo < 0:
        raise MtdslError(f"the halo must be a finite distance, got {halo} (a model whose outputs depend on a "
                         "whole system cannot be split into domains)")
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    B = box(cell, pbc)
    inverse = np.linalg.inv(B)
    u = positions @ inverse
    widen = halo * np.linalg.norm(inverse, axis=0)  # fractional halo along each direction
    lows, highs = np.zeros(3), np.ones(3)
    wraps = np.zeros(u.shape, dtype=np.int64)
    for a in range(3):
        if pbc[a]:
            wraps[:, a] = np.floor(u[:, a]).astype(np.int64)
            u[:, a] -= wraps[:, a]
            top = u[:, a] >= 1.0  # -1e-17 wraps to 1.0 in floating point
            u[top, a] -= 1.0
            wraps[top, a] += 1
        elif len(u):
            lows[a], highs[a] = u[:, a].min(), u[:, a].max()
    slab = [_slabs(u[:, a], lows[a], highs[a], grid[a]) for a in range(3)]
    owner = (slab[0] * grid[1] + slab[1]) * grid[2] + slab[2]
    domains = []
    for index in itertools.product(*(range(n) for n in grid)):
        flat = (index[0] * grid[1] + index[1]) * grid[2] + index[2]
        owned = np.flatnonzero(owner == flat)
        bounds = [_bounds(lows[a], highs[a], grid[a], index[a]) for a in range(3)]
        atoms, shifts = _inside(u, bounds, widen, pbc)
        ghost = ~np.isin(atoms, owned) | np.any(shifts != 0, axis=1)
        domains.append(Domain(index, np.concatenate([owned, atoms[ghost]]),
                              np.concatenate([np.zeros((len(owned), 3), dtype=np.int64), shifts[ghost]]),
                              len(owned)))
    return Decomposition(domains, B, wraps)


def _slabs(u: np.ndarray, low: float, high: float, n: int) -> np.ndarray:
    """The slab of each coordinate: [low, high] in `n` equal parts (the top one closed)."""
    span = high - low
    if span <= 0.0:
        return np.zeros(len(u), dtype=np.int64)
    return np.clip(np.floor((u - low) / span * n).astype(np.int64), 0, n - 1)


def _bounds(low: float, high: float, n: int, k: int) -> tuple[float, float]:
    span = high - low
    return low + span * k / n, low + span * (k + 1) / n


def _inside(u: np.ndarray, bounds, widen: np.ndarray, pbc: np.ndarray):
    """`(atoms, shifts)`: every image `u + shift` (integer shifts along periodic directions) inside
    the box `bounds` widened by `widen`, in order of atom then shift."""
    per_axis = []
    for a in range(3):
        low, high = bounds[a][0] - widen[a], bounds[a][1] + widen[a]
        shifts = range(int(np.floor(low)) - 1, int(np.ceil(high)) + 1) if pbc[a] else range(0, 1)
        found = []
        for shift in shifts:
            moved = u[:, a] + shift
            found.append((shift, np.flatnonzero((moved >= low) & (moved <= high))))
        per_axis.append([(s, atoms) for s, atoms in found if len(atoms)])
    atoms_parts, shift_parts = [], []
    for (sx, ax), (sy, ay) in itertools.product(per_axis[0], per_axis[1]):
        xy = np.intersect1d(ax, ay, assume_unique=True)
        if not len(xy):
            continue
        for sz, az in per_axis[2]:
            xyz = np.intersect1d(xy, az, assume_unique=True)
            if len(xyz):
                atoms_parts.append(xyz)
                shift_parts.append(np.tile(np.array([sx, sy, sz], dtype=np.int64), (len(xyz), 1)))
    if not atoms_parts:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 3), dtype=np.int64)
    atoms = np.concatenate(atoms_parts)
    shifts = np.concatenate(shift_parts)
    order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], atoms))
    return atoms[order], shifts[order]
