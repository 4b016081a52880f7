"""Model-validity attrs of NPP datasets: site occupancy above 1 and hop bias beyond linear
response are reported (one line each), clean results carry an empty note."""
import numpy as np
import pytest
import xarray as xr
from scipy import constants as sc

from continuum.problem import NPPProblem, Phase
from continuum.validity import BIAS_MAX, check_validity


def _problem(flux="nernst-planck"):
    return NPPProblem(species=("Li", "K"), d_models=(None, None), native="Li", n_bulk_m3=1.4e28,
                      thickness_m=1e-7, phases=(Phase("K", 1.0),), output_times_s=(1.0,),
                      f_vac=0.1, flux_convention=flux)


def _ds(li, k, field):
    depth = np.linspace(0, 10, li.shape[-1])
    return xr.Dataset({"concentration": (("species", "time", "depth"), np.stack([li, k])),
                       "field": (("time", "depth_face"), field)},
                      coords={"depth": depth, "depth_face": 0.5 * (depth[1:] + depth[:-1]),
                              "time": np.arange(li.shape[0], dtype=float)})


def _bias_field(bias, problem):
    a = (problem.n_bulk_m3 / (1 - problem.f_vac)) ** (-1 / 3)
    return bias * sc.k * problem.temperature_K / sc.e / a


def test_clean_profile_has_no_note():
    p = _problem()
    li = np.full((2, 11), 0.5)
    ds = _ds(li, 1.0 - li, np.full((2, 10), _bias_field(0.3, p)))
    v = check_validity(ds, p)
    assert v["validity_note"] == ""
    assert v["max_site_occupancy"] == pytest.approx(0.9)
    assert v["max_hop_bias"] == pytest.approx(0.3)


def test_more_ions_than_sites_is_reported_with_the_consistent_flux():
    p = _problem()
    li = np.full((2, 11), 0.5)
    k = np.full((2, 11), 0.5)
    k[1, 2] = 1.2                      # theta = 0.9 * 1.7 = 1.53 at 2 nm, t = 1
    v = check_validity(_ds(li, k, np.zeros((2, 10))), p)
    assert v["max_site_occupancy"] == pytest.approx(1.53)
    assert v["max_site_occupancy_depth_nm"] == pytest.approx(2.0)
    assert v["max_site_occupancy_time_s"] == 1.0
    assert "site occupancy reaches 1.53" in v["validity_note"]
    assert 'flux = "lattice-gas"' in v["validity_note"]
    v = check_validity(_ds(li, k, np.zeros((2, 10))), _problem("lattice-gas"))
    assert "lattice-gas" not in v["validity_note"]


def test_field_far_outside_linear_response_is_reported():
    p = _problem()
    li = np.full((2, 11), 0.5)
    E = np.full((2, 10), _bias_field(0.2, p))
    E[0, 3] = -_bias_field(40.0, p)
    v = check_validity(_ds(li, 1 - li, E), p)
    assert v["max_hop_bias"] == pytest.approx(40.0)
    assert f"(> {BIAS_MAX:g})" in v["validity_note"] and "q E a / kT reaches 40" in v["validity_note"]


def test_annotate_sets_the_status_of_an_otherwise_good_result():
    """Outside validity is a dataset status (one line in the message), unless a worse status
    (e.g. "inaccurate") is already there; the note stays in ``validity_note`` either way."""
    from continuum.validity import OUTSIDE, annotate

    p = _problem()

    def ds_with(theta_total):
        li = np.full((1, 5), theta_total / (1 - p.f_vac))
        return _ds(li, np.zeros_like(li), np.zeros((1, 4)))

    ds = annotate(ds_with(1.5), p)
    assert ds.attrs["status"] == OUTSIDE
    assert ds.attrs["message"].startswith("outside the model's validity: site occupancy")
    worse = ds_with(1.5)
    worse.attrs.update(status="inaccurate", message="estimate 0.1 > tol")
    annotate(worse, p)
    assert worse.attrs["status"] == "inaccurate" and worse.attrs["message"] == "estimate 0.1 > tol"
    assert "site occupancy" in worse.attrs["validity_note"]
    clean = annotate(ds_with(0.9), p)
    assert clean.attrs.get("status", "ok") == "ok" and clean.attrs["validity_note"] == ""
