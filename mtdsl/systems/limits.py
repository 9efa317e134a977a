"""Checks that keep the neighbour search safe: run before vesin allocates anything.

A system that would crash the neighbour search (coordinates beyond what it can
handle exactly, a degenerate cell) or exhaust the machine's memory (a tiny
periodic cell with a large cutoff has billions of pairs) is refused with an
`UnsafeSystemError` that names the frame, the problem and the limit. After the
search, two atoms closer than `min_distance()` are refused too: their pair
vector is (close to) zero and its direction, so any angular function and every
gradient, is undefined.

Limits, each overridable (docs/systems.md, "Limits"):

- `MAX_COORDINATE` (Å): fixed. At 1e6 Å a float64 coordinate is exact to
  2e-10 Å, so distances compared with the cutoff stay exact; beyond, vesin's
  cell arithmetic overflows (a coordinate of 1e300 killed it with SIGFPE).
- `max_pairs()`: the estimated number of pairs (periodic images included) a
  batch may have, `DEFAULT_MAX_PAIRS` unless `$MTDSL_MAX_PAIRS` or the
  `max_pairs=` argument of `neighbors` says otherwise. The estimate is also
  compared with the memory available (`BYTES_PER_PAIR` each).
- `min_distance()` (Å): `DEFAULT_MIN_DISTANCE` unless `$MTDSL_MIN_DISTANCE`
  says otherwise (`0` turns the overlap check off).
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..errors import MtdslError

#: the largest absolute Cartesian coordinate, cell component or cutoff (Å)
MAX_COORDINATE = 1e6
#: the smallest cutoff (Å): vesin refuses 1e-6 and below
MIN_CUTOFF = 1e-5
#: the most pairs (estimated, periodic images included) a batch may have by default
DEFAULT_MAX_PAIRS = 100_000_000
#: memory one pair costs through the neighbour list and the kernels (indices, shifts,
#: vectors, distances, sorting, per-pair intermediates): a deliberate over-estimate
BYTES_PER_PAIR = 1024
#: two atoms closer than this (Å) are an error
DEFAULT_MIN_DISTANCE = 1e-3
#: a cell whose volume is below this fraction of the product of its vector lengths is degenerate
DEGENERATE_CELL = 1e-8

_AXES = "abc"


class UnsafeSystemError(MtdslError):
    """A system the neighbour search must not run on; the message names the frame,
    the problem and the limit (and how to lift it, when it can be lifted)."""


def max_pairs(override=None) -> int:
    """The pair limit: `override`, else `$MTDSL_MAX_PAIRS`, else `DEFAULT_MAX_PAIRS`."""
    if override is not None:
        return _positive_int(override, "max_pairs")
    text = os.environ.get("MTDSL_MAX_PAIRS", "").strip()
    return _positive_int(text, "MTDSL_MAX_PAIRS") if text else DEFAULT_MAX_PAIRS


def min_distance() -> float:
    """The overlap threshold (Å): `$MTDSL_MIN_DISTANCE`, else `DEFAULT_MIN_DISTANCE`."""
    text = os.environ.get("MTDSL_MIN_DISTANCE", "").strip()
    if not text:
        return DEFAULT_MIN_DISTANCE
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value >= 0 and math.isfinite(value)):
        raise UnsafeSystemError(f"MTDSL_MIN_DISTANCE must be a distance >= 0 (Å), got {text!r}")
    return value


def frame_name(batch, index: int) -> str:
    """`frame water.xyz:64` when the system says where it comes from (its index in the batch
    is not its index in the file when frames are run in batches), else `frame 3` (of the batch)."""
    systems = getattr(batch, "systems", None)  # (one system's source: not the list of every one)
    if systems is not None:
        source = getattr(systems[index], "source", None) if index < len(systems) else None
    else:
        sources = batch.sources
        source = sources[index] if index < len(sources) else None
    return f"frame {source}" if source else f"frame {index}"


def check_before_search(batch, positions, cells, pbcs, offsets, cutoff: float, limit=None) -> None:
    """Refuse a batch the neighbour search cannot handle: coordinates, cells and cutoff
    within `MAX_COORDINATE`, periodic cells not degenerate, and an estimated number of
    pairs within the limit and the memory available. Arrays are the batch's, as numpy."""
    limit = max_pairs(limit)
    if not MIN_CUTOFF <= cutoff <= MAX_COORDINATE:
        raise UnsafeSystemError(f"cutoff {cutoff:g} Å is outside the range the neighbour search handles "
                                f"({MIN_CUTOFF:g} to {MAX_COORDINATE:g} Å)")
    total = 0.0
    for index in range(len(cells)):
        where = frame_name(batch, index)
        frame = positions[int(offsets[index]):int(offsets[index + 1])]
        _check_coordinates(where, frame, cells[index])
        if len(frame) == 0:
            continue
        _check_cell(where, cells[index], pbcs[index])
        geometry = _geometry(frame, cells[index], pbcs[index])
        _check_grid(where, geometry, pbcs[index], cutoff)
        estimate = estimated_pairs(frame, cells[index], pbcs[index], cutoff, geometry)
        if estimate > limit:
            raise UnsafeSystemError(
                f"{where}: about {estimate:.3g} pairs within the cutoff of {cutoff:g} Å "
                f"(periodic images included), more than the limit of {limit:,} "
                "(a cell too small for the cutoff?); raise it with MTDSL_MAX_PAIRS or max_pairs=")
        total += estimate
    if total > limit:
        raise UnsafeSystemError(
            f"the batch of {len(cells)} frames has about {total:.3g} pairs, more than the limit of "
            f"{limit:,}; run fewer frames at a time or raise the limit (MTDSL_MAX_PAIRS, max_pairs=)")
    available = available_memory()
    if available is not None and total * BYTES_PER_PAIR > available:
        raise UnsafeSystemError(
            f"the neighbour list of {len(cells)} frame(s) would need about "
            f"{total * BYTES_PER_PAIR / 2**30:.3g} GiB ({total:.3g} pairs), more than the "
            f"{available / 2**30:.3g} GiB of memory available; run fewer frames at a time")


def check_overlaps(batch, first, second, shifts, distances, index: int) -> None:
    """Two atoms of frame `index` closer than `min_distance()`: an error naming them
    (`first`, `second`: frame-local indices of the pairs, `distances` theirs)."""
    threshold = min_distance()
    if threshold <= 0 or len(distances) == 0:
        return
    close = np.flatnonzero(distances < threshold)
    if len(close) == 0:
        return
    k = int(close[np.argmin(distances[close])])
    i, j = sorted((int(first[k]), int(second[k])))
    image = "" if not np.any(shifts[k]) else f" (periodic image {list(map(int, shifts[k]))})"
    types = batch.systems[index].types
    ti, tj = int(np.asarray(types)[i]), int(np.asarray(types)[j])
    raise UnsafeSystemError(
        f"{frame_name(batch, index)}: atoms {i} (Z={ti}) and {j} (Z={tj}){image} are "
        f"{float(distances[k]):.3g} Å apart, closer than the limit of {threshold:g} Å "
        "(overlapping atoms; MTDSL_MIN_DISTANCE sets the limit)")


def estimated_pairs(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float,
                    geometry=None) -> float:
    """About how many ordered pairs (periodic images included) of `positions` are
    closer than `cutoff`, assuming a uniform density: `N^2 * pi/6 * prod_k f_k` with,
    along each axis k of the cell frame, `f_k = 2 rc / d_k` for a periodic axis (`d_k`
    the spacing of its lattice planes: so `N^2 4/3 pi rc^3 / V` for a bulk) and
    `min(1, 2 rc / extent_k)` for an open one. Float, so that hostile input overflows
    to infinity instead of wrapping. `geometry`: `_geometry(positions, cell, pbc)`."""
    planes, extents, _ = geometry if geometry is not None else _geometry(positions, cell, pbc)
    n = float(len(positions))
    factor = math.pi / 6
    for axis in range(3):
        if pbc[axis]:
            factor *= 2 * cutoff / planes[axis] if planes[axis] > 0 else math.inf
        else:
            factor *= min(1.0, 2 * cutoff / extents[axis]) if extents[axis] > 0 else 1.0
    with np.errstate(over="ignore"):
        return float(n * n * factor)


def _geometry(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray):
    """`(planes, extents, fractional)` in the frame of `_complete_cell`: the spacing of the
    lattice planes of each axis (`1 / |column k of the inverse|`), the atoms' extent along
    each axis, and their fractional coordinates."""
    frame = _complete_cell(cell, pbc)
    inverse = np.linalg.inv(frame)
    planes = 1.0 / np.linalg.norm(inverse, axis=0)
    fractional = positions @ inverse
    extents = np.ptp(fractional, axis=0) * planes if len(positions) else np.zeros(3)
    return planes, extents, fractional


def available_memory() -> float | None:
    """Bytes this process may still allocate: `MemAvailable`, capped by `RLIMIT_AS`
    when one is set; None when unknown."""
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = float(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as handle:
                used = float(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            room = max(soft - used, 0.0)
            available = room if available is None else min(available, room)
    except (ImportError, OSError, ValueError):
        pass
    return available


# -- the pieces --------------------------------------------------------------------------------


def _check_coordinates(where: str, positions: np.ndarray, cell: np.ndarray) -> None:
    for name, values in (("positions", positions), ("cell", cell)):
        bad = ~(np.abs(values) <= MAX_COORDINATE)  # NaN counts as bad
        if np.any(bad):
            row, column = (int(v) for v in np.argwhere(bad)[0])
            what = f"atom {row}" if name == "positions" else f"cell vector {_AXES[row]}"
            raise UnsafeSystemError(
                f"{where}: {what} has the coordinate {float(values[row, column]):g} Å "
                f"({'xyz'[column]}), beyond the limit of {MAX_COORDINATE:g} Å that keeps the "
                "neighbour search exact")


def _check_cell(where: str, cell: np.ndarray, pbc: np.ndarray) -> None:
    periodic = [axis for axis in range(3) if pbc[axis]]
    if not periodic:
        return
    vectors = cell[periodic]
    lengths = np.linalg.norm(vectors, axis=1)
    # the volume (or area, or length) the periodic vectors span, against their lengths
    gram = vectors @ vectors.T
    spanned = math.sqrt(max(float(np.linalg.det(gram)), 0.0))
    if not spanned > DEGENERATE_CELL * float(np.prod(lengths)):
        names = ", ".join(_AXES[axis] for axis in periodic)
        raise UnsafeSystemError(
            f"{where}: the periodic cell vectors ({names}) are degenerate: they span "
            f"{spanned:.3g} for lengths {', '.join(f'{v:.3g}' for v in lengths)} Å "
            f"(limit: {DEGENERATE_CELL:g} of their product)")


#: vesin's cell list keeps at most this many cells, rescaling the count along each axis
_VESIN_MAX_CELLS = 1e5
#: cell indices vesin computes are int32: keep them far from overflowing
_MAX_CELL_INDEX = 2**30


def _check_grid(where: str, geometry, pbc: np.ndarray, cutoff: float) -> None:
    """Refuse what vesin's cell list (vesin 0.6, `cpu_cell_list.cpp`) cannot grid. It boxes the
    atoms (the cell along periodic axes, the atoms' extent along open ones), divides the box into
    `trunc(spacing / cutoff)` cells per axis, and when that is more than 1e5 cells in all rescales
    the counts by their ratios, which truncate to zero along an axis of a very anisotropic box
    (a division by zero: SIGFPE; e.g. a molecule 1e6 Å long, or a 4e5 Å slab of a few atoms);
    and it indexes cells with int32."""
    planes, extents, fractional = geometry
    spacings = [float(planes[axis]) if pbc[axis] else float(extents[axis]) for axis in range(3)]
    counts = [max(math.trunc(min(d / cutoff, 1e300)), 1) for d in spacings]
    if float(counts[0]) * counts[1] * counts[2] > _VESIN_MAX_CELLS:
        ratio_xy, ratio_yz = counts[0] / counts[1], counts[1] / counts[2]
        last = math.trunc(np.cbrt(_VESIN_MAX_CELLS / (ratio_xy * ratio_yz * ratio_yz)))
        middle = math.trunc(ratio_yz * last)
        counts = [math.trunc(ratio_xy * middle), middle, last]
    if min(counts) < 1 or max(counts) > _MAX_CELL_INDEX:
        raise UnsafeSystemError(
            f"{where}: the system is too anisotropic for the neighbour search: it spans "
            f"{', '.join(f'{d:.3g}' for d in spacings)} Å along a, b, c for a cutoff of {cutoff:g} Å "
            "(vesin's cell list cannot divide it)")
    reach = np.max(np.abs(fractional), axis=0) * np.array(counts)
    if np.any(reach > _MAX_CELL_INDEX):
        axis = int(np.argmax(reach))
        raise UnsafeSystemError(
            f"{where}: atoms lie {float(np.max(np.abs(fractional[:, axis]))):.3g} cell vectors away along "
            f"{_AXES[axis]}, too far for the neighbour search's cell indices; wrap them into the cell")


def _complete_cell(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """`cell` with the vectors of its open axes replaced by unit vectors orthogonal to the
    periodic ones (and to each other), so that it spans space and the spacing of each periodic
    axis is that of its own lattice (the frame `estimated_pairs` measures in)."""
    frame = np.array(cell, dtype=float)
    if all(pbc):
        return frame
    if not any(pbc):  # (a molecule: what the loop below gives, without its QR factorizations)
        return np.eye(3)
    chosen = [frame[axis] for axis in range(3) if pbc[axis]]
    for axis in range(3):
        if pbc[axis]:
            continue
        best = None
        for unit in np.eye(3):  # the unit vector with the largest part orthogonal to the chosen ones
            vector = unit.copy()
            if chosen:
                basis, _ = np.linalg.qr(np.vstack(chosen).T)
                vector -= basis @ (basis.T @ vector)
            if best is None or np.linalg.norm(vector) > np.linalg.norm(best):
                best = vector
        frame[axis] = best / np.linalg.norm(best)
        chosen.append(frame[axis])
    return frame


def _positive_int(value, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise UnsafeSystemError(f"{name} must be a positive integer, got {value!r}")
    return number
