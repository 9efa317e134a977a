"""Labels against metatensor-core's Labels: same entries, same set operations, same errors."""

import metatensor
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtdsl import Labels, MetadataError
from tests.strategies import unique_rows


def test_construction_and_lookup():
    labels = Labels(["system", "atom"], np.array([[0, 1], [0, 2], [1, 0]], dtype=np.int32))
    assert labels.names == ["system", "atom"]
    assert len(labels) == 3
    assert labels.position([0, 2]) == 1
    assert labels.position((1, 0)) == 2
    assert labels.position([5, 5]) is None
    assert [0, 1] in labels and [9, 9] not in labels
    assert labels[1]["atom"] == 2
    np.testing.assert_array_equal(labels["atom"], [1, 2, 0])
    assert labels.entry(0) == labels[0]
    assert labels.position(labels[2]) == 2


def test_constructors():
    assert Labels.single() == Labels(["_"], np.array([[0]]))
    assert Labels.range("n", 4) == Labels(["n"], np.arange(4).reshape(-1, 1))
    empty = Labels.empty(["a", "b"])
    assert len(empty) == 0 and empty.names == ["a", "b"]


@pytest.mark.parametrize("names", [["a", "a"], ["1x"], ["a-b"], ["é"], [""], ["class"]])
def test_invalid_names(names):
    with pytest.raises(MetadataError, match="label name"):
        Labels(names, np.zeros((0, len(names)), dtype=np.int32))


def test_duplicate_rows_are_an_error():
    with pytest.raises(MetadataError, match=r"same label entry multiple times: \[1, 2\] is already present"):
        Labels(["a", "b"], np.array([[1, 2], [0, 0], [1, 2]]))


def test_int32_overflow_names_the_column():
    with pytest.raises(MetadataError, match="column 'b' does not fit in int32"):
        Labels(["a", "b"], np.array([[0, 2**31]], dtype=np.int64))
    with pytest.raises(MetadataError, match="column 'a'"):
        Labels(["a", "b"], np.array([[-(2**31) - 1, 0]], dtype=np.int64))


def test_shape_errors():
    with pytest.raises(MetadataError, match=r"shape \[n_entries, 2\]"):
        Labels(["a", "b"], np.zeros((3, 3), dtype=np.int32))
    with pytest.raises(MetadataError, match="must be convertible to integers"):
        Labels(["a"], np.zeros((3, 1)))


def test_torch_values_keep_their_type():
    labels = Labels(["a"], torch.tensor([[1], [2]], dtype=torch.int64))
    assert isinstance(labels.values, torch.Tensor) and labels.values.dtype == torch.int32
    assert labels.position([2]) == 1
    union = labels.union(Labels(["a"], torch.tensor([[3]])))
    assert isinstance(union.values, torch.Tensor)
    assert isinstance(labels.append("b", np.array([0, 0])).values, torch.Tensor)


def test_dimension_changes():
    labels = Labels(["a", "b"], np.array([[0, 1], [1, 1]]))
    assert labels.insert(1, "c", np.array([5, 6])).names == ["a", "c", "b"]
    assert labels.append("c", np.array([5, 6])).array.tolist() == [[0, 1, 5], [1, 1, 6]]
    assert labels.permute([1, 0]).names == ["b", "a"]
    assert labels.remove("b").array.tolist() == [[0], [1]]
    assert labels.rename("a", "z").names == ["z", "b"]
    with pytest.raises(MetadataError, match="multiple times"):
        labels.remove("a")
    with pytest.raises(MetadataError, match="'q' not found in the dimensions"):
        labels.remove("q")


@pytest.mark.parametrize("n_entries", [0, 1, 4, 5, 9])
def test_repr_and_str_as_metatensor_prints_them(n_entries):
    rows = np.array([[i, 12 * i - 3, 1000 * i] for i in range(n_entries)]).reshape(-1, 3)
    ours = Labels(["system", "atom", "a_long_name"], rows)
    theirs = metatensor.Labels(["system", "atom", "a_long_name"], rows)
    assert repr(ours) == repr(theirs)
    assert str(ours) == str(theirs)
    if n_entries:
        assert repr(ours[0]) == repr(theirs[0])


def _pair(draw_rows):
    return draw_rows


@st.composite
def labels_pairs(draw, n_columns=2):
    first = unique_rows(draw, n_columns, 12, high=5)
    second = unique_rows(draw, n_columns, 12, high=5)
    return first, second


@settings(max_examples=60, deadline=None)
@given(labels_pairs())
def test_set_operations_match_metatensor(pair):
    first, second = pair
    ours_a, ours_b = Labels(["a", "b"], first), Labels(["a", "b"], second)
    theirs_a, theirs_b = metatensor.Labels(["a", "b"], first), metatensor.Labels(["a", "b"], second)

    union, map_a, map_b = ours_a.union_and_mapping(ours_b)
    t_union, t_map_a, t_map_b = theirs_a.union_and_mapping(theirs_b)
    assert union.array.tolist() == t_union.values.tolist()
    assert map_a.tolist() == t_map_a.tolist() and map_b.tolist() == t_map_b.tolist()

    inter, map_a, map_b = ours_a.intersection_and_mapping(ours_b)
    t_inter, t_map_a, t_map_b = theirs_a.intersection_and_mapping(theirs_b)
    assert inter.array.tolist() == t_inter.values.tolist()
    assert map_a.tolist() == t_map_a.tolist() and map_b.tolist() == t_map_b.tolist()

    diff, mapping = ours_a.difference_and_mapping(ours_b)
    t_diff, t_mapping = theirs_a.difference_and_mapping(theirs_b)
    assert diff.array.tolist() == t_diff.values.tolist()
    assert mapping.tolist() == t_mapping.tolist()

    selection = Labels(["b"], np.unique(second[:, 1:], axis=0).reshape(-1, 1))
    t_selection = metatensor.Labels(["b"], selection.array)
    assert ours_a.select(selection).tolist() == theirs_a.select(t_selection).tolist()
    for row in second.tolist():
        assert ours_a.position(row) == theirs_a.position(row)


def test_wide_values_use_byte_keys():
    # values spanning the whole int32 range in many columns do not fit a 62-bit key
    big = np.iinfo(np.int32)
    first = np.array([[big.min, big.max, 0], [big.max, big.min, 1], [0, 0, 0]], dtype=np.int32)
    second = np.array([[big.max, big.min, 1], [5, 5, 5]], dtype=np.int32)
    union, _, map_b = Labels(["a", "b", "c"], first).union_and_mapping(Labels(["a", "b", "c"], second))
    assert union.array.tolist() == first.tolist() + [[5, 5, 5]]
    assert map_b.tolist() == [1, 3]
    assert Labels(["a", "b", "c"], first).positions(second).tolist() == [1, -1]


def test_positions_vectorized():
    labels = Labels(["a"], np.array([[4], [2], [7]]))
    assert labels.positions(np.array([[7], [1], [4]])).tolist() == [2, -1, 0]


def test_many_positions_in_a_small_box_equal_one_by_one():
    """Above 4,096 queried rows the lookup reads a direct table over the labels' box of values
    (unsorted labels, rows outside the box or absent): the same answer as one lookup per row."""
    rng = np.random.default_rng(0)
    values = np.unique(rng.integers(0, 30, size=(500, 3)), axis=0)
    values = values[rng.permutation(len(values))].astype(np.int32)
    labels = Labels(["a", "b", "c"], values)
    rows = rng.integers(-2, 33, size=(6000, 3)).astype(np.int32)
    rows[::7] = values[rng.integers(0, len(values), size=len(rows[::7]))]
    expected = [labels.position(row) for row in rows]
    expected = [-1 if p is None else p for p in expected]
    assert labels.positions(rows).tolist() == expected
    assert (labels.positions(rows) >= 0).sum() > 800


def test_select_order_follows_metatensor():
    values = np.array([[0, 0], [0, 1], [2, 2], [1, 1]])
    rows = np.array([[1, 1], [0, 0], [9, 9]])
    ours, theirs = Labels(["a", "b"], values), metatensor.Labels(["a", "b"], values)
    for names, selection in ((["a", "b"], rows), (["b", "a"], rows), (["a"], np.array([[1], [0]]))):
        assert ours.select(Labels(names, selection)).tolist() == theirs.select(metatensor.Labels(names, selection)).tolist()
