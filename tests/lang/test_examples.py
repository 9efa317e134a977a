"""The reference programs of LANGUAGE.md §5 check clean; the six "must reject"
variants (one line changed) give their code at the right line and column."""

from __future__ import annotations

import shutil

import pytest

from mtdsl.lang import check

from .conftest import EXAMPLES, Checked

REFERENCE = ["spherical_expansion.mt", "soap_power_spectrum.mt", "soap_energy.mt", "equivariant_convolution.mt"]


@pytest.mark.parametrize("name", REFERENCE)
def test_reference_programs_check_clean(name):
    assert check(str(EXAMPLES / name)) == []


@pytest.fixture
def examples_copy(tmp_path):
    for name in REFERENCE:
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path


def variant(directory, name: str, old: str, new: str) -> Checked:
    text = (directory / name).read_text()
    assert text.count(old) == 1, old
    text = text.replace(old, new)
    (directory / name).write_text(text)
    return Checked(directory / name, text)


def test_reject_invariant_bias_added_to_rho(examples_copy):
    result = variant(examples_copy, "spherical_expansion.mt",
                     "      * sph(P.vector[p], l, m) )\n", "      * sph(P.vector[p], l, m) + 1.0 )\n")
    diagnostic = result.at("E301", "+ 1.0")
    assert "irrep(l)" in diagnostic.hint and "invariant" in diagnostic.hint
    assert result.codes == ["E301"]


def test_reject_tanh_around_rho(examples_copy):
    result = variant(examples_copy, "spherical_expansion.mt",
                     "  = ( sum(p in P.from(i) where S.type[P.second[p]] == b)\n"
                     "        soap_radial(P.distance[p], n, l, n_radial = n_radial, cutoff = cutoff,\n"
                     "                    density_width = atomic_width)\n"
                     "      * cosine_cutoff(P.distance[p], cutoff, width = 0.5)\n"
                     "      * sph(P.vector[p], l, m) )\n",
                     "  = ( tanh(sum(p in P.from(i) where S.type[P.second[p]] == b)\n"
                     "        soap_radial(P.distance[p], n, l, n_radial = n_radial, cutoff = cutoff,\n"
                     "                    density_width = atomic_width)\n"
                     "      * cosine_cutoff(P.distance[p], cutoff, width = 0.5)\n"
                     "      * sph(P.vector[p], l, m)) )\n")
    result.at("E302", "tanh")
    assert result.codes == ["E302"]


def test_reject_sum_over_single_rho_factor(examples_copy):
    result = variant(examples_copy, "soap_power_spectrum.mt",
                     "         * rho{o3_lambda = l, center_type = S.type[i], neighbor_type = b2}[i, m, n2]\n",
                     "         * 2.0\n")
    result.at("E303", "m)")
    assert result.codes == ["E303"]


def test_reject_range8_index_in_radial_slot(examples_copy):
    result = variant(examples_copy, "soap_power_spectrum.mt", "index n1, n2  : radial", "index n1, n2  : range(8)")
    diagnostic = result.at("E201", "n1]")
    assert "radial" in diagnostic.message and "range(8)" in diagnostic.hint
    result.at("E201", "n2]")
    assert set(result.codes) == {"E201"}


def test_reject_rho_properties_of_range8_read_by_power_spectrum(examples_copy):
    # `properties (n)` with `index n : range(8)`: rho's property slot is no longer
    # `radial`, and the power spectrum binds its radial n1 into it
    variant(examples_copy, "spherical_expansion.mt", "index n       : radial", "index n       : range(8)")
    text = (examples_copy / "soap_power_spectrum.mt").read_text()
    result = Checked(examples_copy / "soap_power_spectrum.mt", text)
    result.at("E201", "n1]")
    result.at("E201", "n2]")


def test_reject_odd_sigma_declared_for_rho(examples_copy):
    result = variant(examples_copy, "spherical_expansion.mt", "o3_sigma = 1", "o3_sigma = -1")
    diagnostic = result.at("E306", "o3_sigma = -1")
    assert "-1" in diagnostic.message and "o3_sigma = 1" in diagnostic.message
    assert result.codes == ["E306"]


def test_reject_param_indexed_by_component(examples_copy):
    result = variant(examples_copy, "spherical_expansion.mt", "index m       : irrep(l)\n",
                     "index m       : irrep(l)\nparam w[n, m] ~ zeros\n")
    result.at("E305", "m] ~")
    assert result.codes == ["E305"]


def test_reject_param_indexed_by_component_in_convolution(examples_copy):
    result = variant(examples_copy, "equivariant_convolution.mt", "param wr[k, l1, l2, L, q] ~ normal(0.0, 1.0)",
                     "param wr[k, l1, l2, L, q, M] ~ normal(0.0, 1.0)")
    result.at("E305", "M] ~")
    result.at("E203", "wr[k, l1, l2, L, q]")


def test_convolution_without_parity_filter_is_rejected(examples_copy):
    result = variant(examples_copy, "equivariant_convolution.mt", " where (l1 + l2 + L) % 2 == 0", "")
    diagnostic = result.at("E306", "o3_sigma = 1")
    assert "l1" in diagnostic.message


def test_errors_in_a_used_file_point_into_that_file(examples_copy):
    variant(examples_copy, "spherical_expansion.mt", "o3_sigma = 1", "o3_sigma = -1")
    diagnostics = check(str(examples_copy / "soap_energy.mt"))
    assert [d.code for d in diagnostics] == ["E306"]
    assert diagnostics[0].file.endswith("spherical_expansion.mt")
