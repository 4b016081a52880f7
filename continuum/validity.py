"""Is an NPP result inside the model's validity? (docs/npp.md "Model validity")

Two checks on every NPP dataset, reported as attrs and, when violated, as one line each in
``validity_note`` (the commands print it):

* **site occupancy** ``theta = (1 - f_vac) sum_i c_i`` (``c_i`` in units of n_bulk, ``N_s =
  n_bulk / (1 - f_vac)`` sites): the ``nernst-planck`` flux (the paper's convention) has no site
  exclusion, so nothing keeps ``theta`` below 1; above ``1 + OCCUPANCY_TOL`` the profile holds
  more ions than sites. The ``lattice-gas`` flux is the thermodynamically consistent option
  (``[npp] flux = "lattice-gas"``; it keeps ``theta < 1``).
* **hop bias** ``q |E| a / kT`` (``a = N_s^(-1/3)``, the hop length of the lattice the SED
  describes): the drift term of the Nernst-Planck flux is the linear response of hopping to the
  field; at a bias of 1 the forward/backward rate ratio is e (sinh correction 4 %), beyond
  ``BIAS_MAX`` the continuum model no longer describes the hops it stands for.

Attrs: ``max_site_occupancy`` and where/when (``max_site_occupancy_depth_nm``,
``max_site_occupancy_time_s``), ``max_hop_bias`` (+ ``_depth_nm``, ``_time_s``),
``validity_note`` ("" when both hold); a result that is otherwise "ok" gets the status
"outside-validity" (:func:`annotate`).
"""
from __future__ import annotations

import numpy as np
from scipy import constants as sc

OCCUPANCY_TOL = 1e-3   # theta above 1 + this is reported
BIAS_MAX = 1.0         # q E a / kT above this is reported


def _argmax2(x):
    k = int(np.nanargmax(x)) if np.isfinite(x).any() else 0
    return np.unravel_index(k, x.shape)


def check_validity(ds, problem) -> dict:
    """The attrs of the module docstring for an NPP dataset of `problem`."""
    f_vac = float(problem.f_vac)
    n_sites = float(problem.n_bulk_m3) / (1.0 - f_vac)
    a_m = n_sites ** (-1.0 / 3.0)
    kT_eV = sc.k * float(problem.temperature_K) / sc.e
    out = {}
    notes = []
    c = np.asarray(ds["concentration"].values, float)            # (species, time, depth)
    if c.size:
        theta = (1.0 - f_vac) * np.nansum(c, axis=0)               # (time, depth)
        it, ix = _argmax2(theta)
        th = float(theta[it, ix])
        out.update(max_site_occupancy=th,
                   max_site_occupancy_depth_nm=float(ds.depth.values[ix]),
                   max_site_occupancy_time_s=float(ds.time.values[it]))
        if th > 1.0 + OCCUPANCY_TOL:
            over = theta > 1.0 + OCCUPANCY_TOL
            depth_over = float(np.max(np.asarray(ds.depth.values)[over.any(axis=0)]))
            fix = (' (the nernst-planck flux has no site exclusion; [npp] flux = "lattice-gas" is '
                   'the thermodynamically consistent option)'
                   if problem.flux_convention == "nernst-planck" else "")
            notes.append(f"site occupancy reaches {th:.3g} (more ions than sites) at "
                         f"{out['max_site_occupancy_depth_nm']:.3g} nm, t = "
                         f"{out['max_site_occupancy_time_s']:.3g} s; above 1 down to "
                         f"{depth_over:.3g} nm{fix}")
    bias = None
    if "field" in ds and ds["field"].size:
        E = np.abs(np.asarray(ds["field"].values, float))          # (time, face)
        bias = E * a_m / kT_eV
        depth_name = [d for d in ds["field"].dims if d != "time"][0]
        depth = np.asarray(ds[depth_name].values, float)
    elif "back_field" in ds and ds["back_field"].size:             # electroneutral solver
        bias = (np.abs(np.asarray(ds["back_field"].values, float)) * a_m / kT_eV)[:, None]
        depth = np.array([float(ds.depth.values[-1])])
    if bias is not None:
        it, ix = _argmax2(bias)
        b = float(bias[it, ix])
        out.update(max_hop_bias=b, max_hop_bias_depth_nm=float(depth[ix]),
                   max_hop_bias_time_s=float(ds.time.values[it]))
        if b > BIAS_MAX:
            notes.append(f"hop bias q E a / kT reaches {b:.3g} at {float(depth[ix]):.3g} nm, "
                         f"t = {float(ds.time.values[it]):.3g} s (a = {a_m * 1e9:.3g} nm): far "
                         f"outside the linear response the drift term stands for (> {BIAS_MAX:g})")
    out["validity_note"] = "; ".join(notes)
    return out


OUTSIDE = "outside-validity"   # the dataset status of an otherwise good result beyond validity


def annotate(ds, problem):
    """`ds` with the validity attrs (in place); returns `ds`. A result with status "ok" whose
    ``validity_note`` is not empty gets status ``OUTSIDE`` and the note in its message (a worse
    status, e.g. "inaccurate", is kept; the note is in ``validity_note`` either way)."""
    ds.attrs.update(check_validity(ds, problem))
    note = ds.attrs["validity_note"]
    if note and ds.attrs.get("status", "ok") == "ok":
        ds.attrs["status"] = OUTSIDE
        ds.attrs["message"] = "; ".join(m for m in (ds.attrs.get("message", ""),
                                                    f"outside the model's validity: {note}") if m)
    return ds
