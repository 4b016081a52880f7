"""`cait dn` (compare.workflows.dn): the D(x) dataset, reuse rules, the fit path and the CLI contract."""
import os

import numpy as np
import pytest
import xarray as xr
from scipy.special import erfc

from compare.workflows import dn
from compare.cli import main
from compare.io.config import load_config
from compare.errors import ConfigError, InputFileError

INPUT = """
[material]
name = "test glass"
n_bulk_cm3 = 1.4e22
vacancy_fraction = 0.10
temperature_K = 300.0

[sed]
kind = "gaussian"
fwhm_eV = 0.250
filling = "step"

[species.Li]
role = "native"
D_cm2_s = 1.5e-13
E_DC_eV = 0.3

[species.K]
role = "foreign"
D_model = "constant"
D_cm2_s = 9e-17
E_DC_eV = 0.3
site_correlation = 0.0

[sample]
thickness_nm = 100.0

[[beam]]
species = "K"
duration_s = 100.0
back_field_V_per_m = 2.0e4

[output]
n_slabs = 2                # <= eq_size: the equilibrium lattice is eq_size layers deep

[kmc]
nx = 20
eq_size = 4
eq_blocks = 3
eq_events_per_block = 2000
eq_equilibration_events = 2000

[fit]
n_starts = 2
workers = 1
"""


@pytest.fixture(scope="module")
def dn_run(tmp_path_factory):
    """One real (tiny) run through the CLI: 4^3 lattice, x = 0.5 and 1."""
    d = tmp_path_factory.mktemp("dn")
    inp = d / "glass.toml"
    inp.write_text(INPUT)
    out = d / "out"
    code = main(["dn", str(inp), "-o", str(out), "--x", "0.5", "--replicas", "1", "--quiet"])
    return code, inp, out


def test_cli_writes_dataset_and_figure(dn_run):
    code, _, out = dn_run
    assert code == 0
    assert (out / "dn.png").stat().st_size > 0
    ds = xr.open_dataset(out / "dn.nc")
    try:
        np.testing.assert_allclose(ds.x.values, [0.5, 1.0])  # x = 1 always added
        for v in ("D_eff", "D_eff_sem", "two_D_star", "D_eff_cait", "D_sed", "D_sed_input"):
            assert ds[v].attrs["units"] == "cm^2/s", v
        # (a) is scaled to the KMC's own bulk value: equal at x = 1 for both fillings
        d_bulk = float(ds.D_eff.sel(species="Li", x=1.0))
        assert ds.attrs["D_bulk_kmc_cm2_s"] == pytest.approx(d_bulk, rel=1e-12)
        np.testing.assert_allclose(ds.D_sed.isel(x_fine=-1).values, d_bulk, rtol=1e-9)
        assert float(ds.D_sed_input[-1]) == pytest.approx(1.5e-13, rel=1e-9)
        # foreign is absent at x = 1; 2 D* is twice the KMC tracer value
        assert np.isnan(float(ds.D_eff.sel(species="K", x=1.0)))
        eq = xr.open_dataset(out / "kmc_equilibrium.nc")
        np.testing.assert_allclose(ds.two_D_star.values,
                                   2 * eq.D_star.sel(species=["Li", "K"]).transpose("species", "x"))
        eq.close()
        assert ds.attrs["fit"] == "none"
    finally:
        ds.close()


def test_reuse_keeps_the_kmc_dataset(dn_run, capsys):
    _, inp, out = dn_run
    path = out / "kmc_equilibrium.nc"
    mtime = path.stat().st_mtime_ns
    assert main(["dn", str(inp), "-o", str(out), "--reuse"]) == 0
    assert path.stat().st_mtime_ns == mtime
    assert "reusing" in capsys.readouterr().out


def test_reuse_refuses_a_dataset_of_another_input(dn_run, tmp_path, capsys):
    _, _, out = dn_run
    other = tmp_path / "other.toml"
    other.write_text(INPUT.replace("temperature_K = 300.0", "temperature_K = 310.0"))
    assert main(["dn", str(other), "-o", str(out), "--reuse"]) == 2
    assert "was made from a different input" in capsys.readouterr().err


def test_bad_x_list_is_exit_code_2(dn_run, capsys):
    _, inp, out = dn_run
    assert main(["dn", str(inp), "-o", str(out), "--x", "0.5,1.5"]) == 2
    assert "`--x` values must lie in [0, 1]" in capsys.readouterr().err


def test_single_species_input_is_refused(tmp_path):
    text = INPUT.split("[species.K]")[0] + "[sample]" + INPUT.split("[sample]")[1]
    text = text.replace('species = "K"\n', "").replace("back_field_V_per_m = 2.0e4",
                                                       'drive = "off"')
    p = tmp_path / "one.toml"
    p.write_text(text)
    # the input schema already requires a foreign species; either message names it
    with pytest.raises(ConfigError, match="foreign"):
        dn.run_dn(p, out_dir=tmp_path / "o", quiet=True)


def test_sed_curve_unknown_filling(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text(INPUT)
    with pytest.raises(ConfigError, match="unknown filling 'cold'; legal: step, fermi-dirac"):
        dn.sed_curve(load_config(p), 1e-10, [0.5], "cold")


# ----------------------------------------------------------------------------- (c) fit path
TRUE = {"fwhm": 0.30, "Li": 3e-9, "K": 2e-10}
A_NM, NX = 0.4, 50


def _fake_forward(cfg):
    """Analytic stand-in for NPP: three features, one per parameter (identifiable)."""
    depth = np.linspace(0.0, A_NM * NX, 400)
    w_k = 5.0 * np.sqrt(cfg.species_by_name("K").D_cm2_s / 1e-10)
    w_li = 3.0 * np.sqrt(cfg.species_by_name("Li").D_cm2_s / 1e-9)
    plateau = 0.5 * cfg.sed.fwhm_eV
    k = 0.9 * 0.5 * erfc(depth / w_k - 1.0)
    li = 1.0 - k * (1.0 - plateau) + 0.1 * np.exp(-depth / w_li)
    conc = np.stack([li, k])[:, None, :]
    return xr.Dataset({"concentration": (("species", "time", "depth"), conc)},
                      coords={"species": ["Li", "K"], "time": [100.0], "depth": depth})


def _fake_kmc(path, rng):
    class C:
        pass

    cfg = C()
    vals = {"Li": TRUE["Li"], "K": TRUE["K"]}
    cfg.species_by_name = lambda n: type("S", (), {"D_cm2_s": vals[n]})
    cfg.sed = type("Sed", (), {"fwhm_eV": TRUE["fwhm"]})
    ref = _fake_forward(cfg)
    depth = (np.arange(NX) + 0.5) * A_NM
    conc = np.stack([np.interp(depth, ref.depth, ref.concentration.isel(time=0).sel(species=s))
                     for s in ("Li", "K")])
    err = 0.005
    noisy = conc + err * rng.standard_normal(conc.shape)
    ds = xr.Dataset({"concentration": (("species", "time", "depth"), noisy[:, None, :]),
                     "concentration_sem": (("species", "time", "depth"),
                                           np.full_like(noisy[:, None, :], err))},
                    coords={"species": ["Li", "K"], "time": [100.0], "depth": depth},
                    attrs={"engine": "kmc", "a_nm": A_NM, "nx": NX})
    ds.to_netcdf(path)


def test_fit_path_recovers_known_parameters(dn_run, tmp_path, rng, capsys):
    _, inp, out = dn_run
    kmc_path = tmp_path / "kmc.nc"
    _fake_kmc(kmc_path, rng)
    target = tmp_path / "o"
    target.mkdir()
    os.link(out / "kmc_equilibrium.nc", target / "kmc_equilibrium.nc")
    paths = dn.run_dn(inp, out_dir=target, reuse=True, fit=True, kmc_dataset=kmc_path,
                      quiet=True, forward=_fake_forward)
    ds = xr.open_dataset(paths["dataset"])
    try:
        assert ds.attrs["fit"] == "ok"
        for name, true in (("sed.fwhm_eV", TRUE["fwhm"]), ("species.Li.D_cm2_s", TRUE["Li"]),
                           ("species.K.D_cm2_s", TRUE["K"])):
            best, se = ds.attrs[f"fit_{name}"], ds.attrs[f"fit_{name}_stderr"]
            assert abs(best - true) < 5 * se, (name, best, se, true)  # noise 0.005: 5 SE
        # (c) curves: the foreign D is the fitted constant, the native one the SED formula
        np.testing.assert_allclose(ds.D_fit.sel(species="K"), ds.attrs["fit_species.K.D_cm2_s"])
        assert float(ds.D_fit.sel(species="Li")[-1]) == pytest.approx(
            ds.attrs["fit_species.Li.D_cm2_s"], rel=1e-9)
        dn._print_table(ds)  # the table shows the fit next to the KMC values
        out = capsys.readouterr().out
        assert ", NPP fit D = " in out and "NPP fit to the KMC CAIT profile: sed.fwhm_eV = " in out
    finally:
        ds.close()
    assert (target / "dn_fit.nc").is_file()
    with xr.open_dataset(target / "dn_fit.nc") as f:  # default search model: 400 / 4 cells
        assert f.attrs["search_model"] == "100 cells, rtol 0.001"
        assert list(f["start_model"].values) == ["search", "search", "full"]


@pytest.mark.parametrize("npp, expected", [
    ("", (100, 1e-3)),  # [npp] defaults: 400 cells, rtol 1e-4
    ("[npp]\nn_cells = 800\nrtol = 3e-3\n", (200, 3e-3)),
    ("[npp]\nn_cells = 60\n", (60, 1e-3)),
])
def test_default_search_model(tmp_path, npp, expected):
    p = tmp_path / "g.toml"
    p.write_text(INPUT + npp)
    got = dn.default_search_model(load_config(p))
    assert (got["search_n_cells"], got["search_rtol"]) == expected


def test_fit_needs_a_kmc_dataset(dn_run, tmp_path):
    _, inp, out = dn_run
    with pytest.raises(InputFileError, match="KMC CAIT dataset not found"):
        dn.run_dn(inp, out_dir=out, reuse=True, fit=True, kmc_dataset=tmp_path / "none.nc",
                  quiet=True, forward=_fake_forward)
