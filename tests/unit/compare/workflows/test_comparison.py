"""Unit tests of compare.workflows.comparison: metric definitions on profiles with known answers."""
import math

import numpy as np
import pytest
import xarray as xr

from compare.workflows import comparison as cm
from compare.workflows import profile_metrics as pm
from compare.reports import comparison as rc
from compare.errors import ConfigError, InputFileError


def test_front_position_interpolates_deepest_crossing():
    depth = np.arange(10) + 0.5
    c = np.array([0.9, 0.9, 0.8, 0.6, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0])
    # crossing of 0.4 between 3.5 (0.6) and 4.5 (0.2): halfway
    assert pm.front_position(depth, c, 0.4) == pytest.approx(4.0)


def test_front_position_ignores_shallow_dips_and_handles_edges():
    depth = np.arange(6) + 0.5
    c = np.array([0.9, 0.1, 0.9, 0.9, 0.0, 0.0])  # a noisy dip must not end the front
    assert pm.front_position(depth, c, 0.45) == pytest.approx(3.5 + 0.45 / 0.9)
    assert pm.front_position(depth, np.zeros(6), 0.5) == 0.0
    assert pm.front_position(depth, np.ones(6), 0.5) == depth[-1]
    assert math.isnan(pm.front_position(depth, np.full(6, np.nan), 0.5))


def test_front_reference_skips_surface_layer():
    depth = np.array([0.2, 0.6, 1.0, 1.4])
    c = np.array([1.0, 0.7, 0.6, 0.1])
    assert pm.front_reference(depth, c) == pytest.approx(0.7)


def test_plateau_is_the_length_weighted_median_over_the_window():
    depth = np.arange(20) * 0.5 + 0.25
    edges = np.arange(21) * 0.5
    native = np.where(depth < 5.0, 0.3, 1.0)
    assert pm.plateau_level(depth, native, 5.0) == pytest.approx(0.3)
    assert pm.plateau_level(depth, native, 5.0, edges=edges) == pytest.approx(0.3)
    # a linear profile: the median over [0.25, 0.75] nm is its value at 0.5 nm
    assert pm.plateau_level(depth, depth, 1.0) == pytest.approx(0.5)
    assert math.isnan(pm.plateau_level(depth, native, 0.0))
    # layers: a spike in one layer does not move the median (it would move a mean)
    spiky = np.full(20, 0.2)
    spiky[5] = 1.0
    assert pm.plateau_level(depth, spiky, 8.0, edges=edges) == pytest.approx(0.2)
    # overlap weights: window [1.0, 3.0] nm covers layers 2..5 fully
    assert pm.plateau_level(depth, np.arange(20.0), 4.0, edges=edges) == pytest.approx(3.5)
    assert pm.weighted_median([0.1, 0.2, 0.9], [1.0, 1.0, 0.5]) == pytest.approx(0.2)


def test_inventory_l2_and_layer_average_exact():
    edges = np.array([0.0, 1.0, 3.0])
    assert pm.inventory(edges, [0.5, 0.25]) == pytest.approx(1.0)
    assert pm.l2_distance([0, 0, 0, 0], [1, 1, -1, -1]) == pytest.approx(1.0)
    x = np.linspace(0, 3, 31)
    avg = pm.layer_average(x, 2 * x, edges)  # linear profile: layer mean = value at the centre
    np.testing.assert_allclose(avg, [1.0, 4.0], rtol=1e-12)


def test_profile_metrics_on_a_step_profile():
    a = 0.4
    depth = (np.arange(30) + 0.5) * a
    edges = np.arange(31) * a
    foreign = np.where(depth < 6.0, 0.7, 0.0)
    native = 1.0 - foreign
    m = pm.profile_metrics(depth, edges, native, foreign)
    assert m["level"] == pytest.approx(0.35)
    assert m["front_position"] == pytest.approx(6.0, abs=0.5 * a)
    assert m["plateau"] == pytest.approx(0.3)
    assert m["inventory"] == pytest.approx(0.7 * 15 * a)


def _eq(d_li, d_k, sem_frac=0.1):
    x = np.array([0.0, 0.5, 1.0])
    d = np.array([d_li, d_k])
    return xr.Dataset({"D_eff": (("species", "x"), d), "D_eff_sem": (("species", "x"), sem_frac * d)},
                      coords={"species": ["Li", "K"], "x": x})


def test_equilibrium_table_drops_unreliable_points():
    eq = _eq([np.nan, 1e-15, 1e-13], [1e-15, 2e-15, np.nan])
    eq["D_eff_sem"].loc[dict(species="Li", x=0.5)] = 0.9e-15  # 90 % error: dropped
    frac, D = cm.equilibrium_table(eq, "Li", "native")
    np.testing.assert_allclose(frac, [1.0])
    frac, D = cm.equilibrium_table(eq, "K", "foreign")
    np.testing.assert_allclose(frac, [0.5, 1.0])  # foreign fraction = 1 - x, sorted
    np.testing.assert_allclose(D, [2e-15, 1e-15])


def test_d_bulk_from_equilibrium_needs_x_one():
    from types import SimpleNamespace

    cfg = SimpleNamespace(native=SimpleNamespace(name="Li"))
    eq = _eq([np.nan, 1e-15, 1e-13], [1e-15, 2e-15, np.nan])
    assert cm.d_bulk_from_equilibrium(eq, cfg) == (pytest.approx(1e-13), pytest.approx(1e-14))
    with pytest.raises(InputFileError, match="no composition x = 1"):
        cm.d_bulk_from_equilibrium(eq.isel(x=[0, 1]), cfg)


def test_equilibrium_d_bulk_prefers_the_runs_long_block_values():
    """The NPP runs take the native and foreign D of the run's own measured ratio (kmc.nc, long
    blocks) over the short-block table; without them, the table's x = 1 point."""
    from types import SimpleNamespace

    import compare.scenario  # noqa: F401  (npp_dmodels builds SED models from cfg)

    cfg = SimpleNamespace(native=SimpleNamespace(name="Li"))
    eq = _eq([np.nan, 1e-15, 1e-13], [1e-15, 2e-15, np.nan])
    kmc = xr.Dataset(attrs={"D_native_bulk_cm2_s": 2e-14, "D_native_bulk_sem_cm2_s": 3e-15,
                            "D_foreign_eff_cm2_s": 4e-16, "D_foreign_eff_sem_cm2_s": 1e-17,
                            "D_native_bulk_source": "equilibrium x = 1, long blocks"})
    assert cm.d_bulk_from_equilibrium(eq, cfg, kmc) == (2e-14, 3e-15)
    assert cm.kmc_long_block_d(kmc)[2:4] == (4e-16, 1e-17)
    assert cm.d_bulk_from_equilibrium(eq, cfg, xr.Dataset()) == (pytest.approx(1e-13),
                                                                 pytest.approx(1e-14))
    bad = kmc.assign_attrs(D_native_bulk_cm2_s=float("nan"))
    assert cm.kmc_long_block_d(bad) is None
    # the foreign table is rescaled to the long-block pure-foreign value
    cfg = SimpleNamespace(native=SimpleNamespace(name="Li"),
                          species=(SimpleNamespace(name="Li"),
                                   SimpleNamespace(name="K", D_cm2_s=1e-15)))
    models = cm.npp_dmodels(cfg, "kmc-table", 1e-13, eq, d_foreign_cm2_s=4e-16)
    np.testing.assert_allclose(models["K"].D([1.0, 0.5]), [4e-16 * 1e-4, 8e-16 * 1e-4])


def test_unknown_source_names_are_errors():
    with pytest.raises(ConfigError, match="unknown NPP D source 'bogus'; legal: sed, kmc-table"):
        cm.npp_dmodels(None, "bogus", 1e-13)


def _galv_kmc(D_cm2_s, E_V_per_m, n_rep=3, nx=10, ny=10, nz=10, a_nm=0.4, T=300.0,
              n_bulk_cm3=1.4e22, seed=0):
    """Synthetic galvanostatic KMC ensemble: foreign zone in layers 0..2 (growing), uniform
    bulk field E with +-1 c noise per gap and snapshot, native back current of an ohmic bulk."""
    from scipy import constants as sc

    rng = np.random.default_rng(seed)
    times = np.arange(6.0)
    area = ny * nz * (a_nm * 1e-9) ** 2
    J = D_cm2_s * 1e-4 * n_bulk_cm3 * 1e6 * sc.e * E_V_per_m / (sc.k * T)  # ions / m^2 / s
    back = np.round(J * area * times).astype(np.int64)
    conc = np.zeros((n_rep, 2, times.size, nx))
    conc[:, 0] = 1.0
    for k in range(1, times.size):
        conc[:, 1, k, :min(k, 3)] = 0.5   # foreign: gaps 1..3 are not foreign-free
        conc[:, 0, k, :min(k, 3)] = 0.5
    field = E_V_per_m + 1.4e7 * rng.choice([-1.0, 0.0, 1.0], size=(n_rep, times.size, nx + 1))
    for k in range(1, times.size):
        field[:, k, :min(k, 3) + 1] = 1e9  # replaced zone: large field, not in the bulk average
    bno = np.zeros((n_rep, times.size, 2), np.int64)
    bno[:, :, 0] = back
    return xr.Dataset(
        {"concentration": (("replica", "species", "time", "depth"), conc),
         "field": (("replica", "time", "gap_depth"), field),
         "back_net_out": (("replica", "time", "species"), bno)},
        coords={"species": ["Li", "K"], "time": times, "depth": (np.arange(nx) + 0.5) * a_nm,
                "gap_depth": np.arange(nx + 1) * a_nm},
        attrs={"a_nm": a_nm, "nx": nx, "ny": ny, "nz": nz})


def _galv_cfg(D_input=2e-14, E_back=3.2e6):
    from types import SimpleNamespace

    return SimpleNamespace(
        native=SimpleNamespace(name="Li", D_cm2_s=D_input),
        material=SimpleNamespace(temperature_K=300.0, n_bulk_cm3=1.4e22),
        beam=(SimpleNamespace(drive="galvanostatic", duration_s=5.0, back_field_V_per_m=E_back,
                              voltage_V=math.nan),))


def test_galvanostatic_d_bulk_uses_the_realised_bulk_field():
    """Fixed beam current: D from the KMC's own bulk field, not from the input's E_back."""
    cfg = _galv_cfg()
    D_true, E_true = 0.8e-14, 2.0e7
    kmc = _galv_kmc(D_true, E_true)
    e = cm.bulk_field_kmc(kmc, cfg)
    # per replica >= 30 (snapshot, foreign-free gap) samples of std sqrt(2/3) c: 5 SE
    assert np.all(np.abs(e - E_true) < 5 * 1.4e7 * np.sqrt(2 / 3) / np.sqrt(30)), e
    D, sem = cm.d_bulk_from_current(kmc, cfg)
    # exact: D_true E_true / mean field of each replica (counter rounding < 1e-3)
    np.testing.assert_allclose(D, np.mean(D_true * E_true / e), rtol=2e-3)
    assert sem > 0
    assert cm.npp_field_scale(cfg, D) == pytest.approx(2e-14 / D)


def test_galvanostatic_d_bulk_needs_a_foreign_free_bulk():
    cfg = _galv_cfg()
    kmc = _galv_kmc(1e-14, 2e7)
    kmc["concentration"][:, 1, 1:, :] = 0.5
    with pytest.raises(ConfigError, match="no foreign-free bulk"):
        cm.d_bulk_from_current(kmc, cfg)


def test_shown_times_thin_and_follow_plot_times():
    from types import SimpleNamespace

    cmp = xr.Dataset(coords={"time": np.arange(33) * 0.25})
    t = rc.shown_times(cmp)
    assert len(t) <= rc.MAX_SHOWN_TIMES and t[-1] == 8.0 and 0.0 not in t
    cfg = SimpleNamespace(output=SimpleNamespace(plot_times_s=(2.0, 4.1, 8.0)))
    assert rc.shown_times(cmp, cfg) == [2.0, 4.0, 8.0]
    assert rc.shown_times(xr.Dataset(coords={"time": np.arange(4.0)})) == [1.0, 2.0, 3.0]


# ------------------------------------------------------------ NPP box for a moving-back KMC
def _nodes(depth_nm):
    """The same nodes on every box: 0.05 nm at the surface growing to 1 nm by 10 nm, 1 nm cells to
    200 nm, then cells growing by 10 % to the back."""
    head = np.cumsum(0.05 * 1.1 ** np.arange(32))
    nodes = [0.0, *head[head < 10.0]]
    while nodes[-1] < min(200.0, depth_nm) - 1e-9:
        nodes.append(min(nodes[-1] + 1.0, depth_nm))
    h = 1.0
    while nodes[-1] < depth_nm - 1e-9:
        h *= 1.1
        nodes.append(min(nodes[-1] + h, depth_nm))
    if depth_nm - nodes[-2] < 0.3 * h:
        del nodes[-2]
    return tuple(nodes)


def test_semi_infinite_npp_box_deepens_until_the_front_is_inside():
    """On 60 nm (the front passes 100 nm) the back drains the K; the deepened box agrees with a
    run on a fixed 4x deeper box on the first 60 nm (same cells there), and the short box alone
    does not."""
    import dataclasses
    from pathlib import Path

    from compare import scenario
    from compare.io.config import load_config
    from continuum.problem import MeshSpec

    cfg = load_config(Path(__file__).resolve().parents[4] / "inputs" / "li3b7o12_k_cait.toml")
    times = (2000.0, 8000.0, 15030.0)

    def problem(depth_nm):
        p = scenario.npp_problem(cfg, thickness_nm=depth_nm, output_times_s=times)
        return dataclasses.replace(p, mesh=MeshSpec(nodes_nm=_nodes(depth_nm)))

    ds = cm.solve_semi_infinite(cfg, problem, 60.0)
    assert ds.attrs["npp_depth_nm"] in (120.0, 240.0)
    assert cm.foreign_at_back(ds, ["K"]) < cm.BACK_FOREIGN
    ref = scenario.solve_npp(cfg, problem(4 * ds.attrs["npp_depth_nm"]))
    short = scenario.solve_npp(cfg, problem(60.0))
    z = np.linspace(0.5, 59.5, 120)

    def on_z(d, t):
        return np.interp(z, d.depth.values, d.concentration.sel(species="K", time=t).values)

    err = max(np.abs(on_z(ds, t) - on_z(ref, t)).max() for t in times)
    err_short = max(np.abs(on_z(short, t) - on_z(ref, t)).max() for t in times)
    assert err < 1e-3 and err_short > 0.5, (err, err_short)


def test_npp_status_carries_npp_problems_into_compare():
    mk = lambda **a: xr.Dataset(attrs=a)  # noqa: E731
    ok = mk(status="ok", message="", validity_note="")
    assert cm.npp_status({"sed": ok}, mk()) == ("ok", [])
    bad = mk(status="inaccurate", message="estimate 0.1 > tol", validity_note="")
    note = mk(status="ok", message="", validity_note="site occupancy reaches 1.9")
    st, lines = cm.npp_status({"sed": bad, "kmc-table": note}, mk())
    assert st == "inaccurate" and lines == ["npp-sed: inaccurate: estimate 0.1 > tol",
                                            "npp-kmc-table: outside validity: site occupancy "
                                            "reaches 1.9"]
    st, lines = cm.npp_status({"sed": ok}, mk(npp_front_beyond_kmc_depth="sed"))
    assert st == "ok" and "beyond the KMC lattice" in lines[0]
    # a run that is otherwise good but outside validity (continuum.validity) sets the status;
    # one line (the note), and a worse status of another run wins
    outside = mk(status="outside-validity", message="outside the model's validity: hop bias",
                 validity_note="hop bias q E a / kT reaches 1.3")
    st, lines = cm.npp_status({"sed": outside, "kmc-table": ok}, mk())
    assert st == "outside-validity"
    assert lines == ["npp-sed: outside validity: hop bias q E a / kT reaches 1.3"]
    st, _ = cm.npp_status({"sed": outside, "kmc-table": bad}, mk())
    assert st == "inaccurate"


def test_reuse_accepts_an_input_that_differs_only_where_the_kmc_does_not_read(tmp_path):
    """--reuse: a kmc.nc of the same input except [npp] / [fit] is reused (so the NPP side can be
    rerun, e.g. with another flux convention); any change the KMC reads is refused."""
    import hashlib
    from pathlib import Path

    from compare.io.config import parse_text

    text = Path("inputs/li3b7o12_kmc_k_cait.toml").read_text()
    path = tmp_path / "kmc.nc"
    xr.Dataset(attrs={"input_text": text,
                      "input_sha256": hashlib.sha256(text.encode()).hexdigest()}).to_netcdf(path)
    base = Path("inputs").resolve()
    assert cm._reusable(path, parse_text(text, base_dir=base), True)
    assert not cm._reusable(path, parse_text(text, base_dir=base), False)
    assert "[npp]" not in text
    npp_only = text + '\n[npp]\nflux = "lattice-gas"\ntol = 0.02\n'
    assert cm._reusable(path, parse_text(npp_only, base_dir=base), True)
    seed_changed = text.replace("seed = ", "seed = 1", 1)
    assert seed_changed != text
    with pytest.raises(InputFileError, match="differs outside"):
        cm._reusable(path, parse_text(seed_changed, base_dir=base), True)


def test_equilibrium_table_of_another_input_needs_the_same_glass(tmp_path):
    """--equilibrium: a table made with other [kmc] settings (e.g. longer blocks) is used; one
    of another material, SED or species set is refused, as is a missing or foreign file."""
    from pathlib import Path

    from compare.cli import main
    from compare.io.config import parse_text

    text = Path("inputs/li3b7o12_kmc_k_cait.toml").read_text()
    cfg = parse_text(text, base_dir=Path("inputs").resolve())

    def table(input_text, name):
        path = tmp_path / name
        xr.Dataset(attrs={"input_text": input_text}).to_netcdf(path)
        return path

    import re

    longer = re.sub(r"eq_events_per_block = \d+", "eq_events_per_block = 2000000", text)
    assert longer != text
    assert cm.equilibrium_table_for(table(longer, "long.nc"), cfg).attrs["input_text"] == longer
    wider = text.replace("fwhm_eV = 0.250", "fwhm_eV = 0.350", 1)
    assert wider != text
    with pytest.raises(InputFileError, match=r"another \[sed\]"):
        cm.equilibrium_table_for(table(wider, "wide.nc"), cfg)
    with pytest.raises(InputFileError, match="does not exist"):
        cm.equilibrium_table_for(tmp_path / "none.nc", cfg)
    (tmp_path / "junk.nc").write_text("not netcdf")
    with pytest.raises(InputFileError, match="cannot use"):
        cm.equilibrium_table_for(tmp_path / "junk.nc", cfg)
    # the CLI: one line, exit code 2, before anything runs
    code = main(["compare", "inputs/li3b7o12_kmc_k_cait.toml", "-o", str(tmp_path / "out"),
                 "--equilibrium", str(tmp_path / "wide.nc")])
    assert code == 2 and not (tmp_path / "out").exists()
