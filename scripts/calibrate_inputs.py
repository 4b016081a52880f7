"""Calibrate the bundled Li3B7O12 CAIT inputs with the electroneutral NPP solver.

For K+, Rb+ and Cs+ find the constant foreign D that leaves a Li plateau of 15 %, 7 % and 3 %
(paper Fig. 1) and a galvanostatic back field and duration that bring the replacement front to
~100 nm with a surface potential of a few volts.  Then run the Rb-then-Cs double CAIT, and
cross-check one case with the full NPP solver.  Writes nothing; prints the tables that go into
docs/calibration.md.  Run: ``.venv/bin/python scripts/calibrate_inputs.py [--no-full]``.

Definitions (also in docs/calibration.md)
* front depth: where the Li fraction crosses 0.5 (linear interpolation between cell centres);
* plateau: Li fraction at half the front depth, at the end of the beam phase;
* surface potential: phi(0) - phi(L) of the electroneutral solution (the ideal double-layer
  jump for the chosen theta_front is printed separately; it is ~0.01 V).
"""
import argparse
import time

import numpy as np
import scipy.constants as sc

from continuum.dmodel import ConstantD, SEDDiffusivity
from continuum.electroneutral import solve_electroneutral
from continuum.problem import MeshSpec, NPPProblem, Phase
from continuum.sed import GaussianSED

# --- material (docs/physics.md section 7; D_Li bulk chosen, see docs/calibration.md)
N_BULK_M3 = 1.4e22 * 1e6
F_VAC = 0.10
TEMPERATURE_K = 300.0
FWHM_EV = 0.25
D_LI_BULK_M2_S = 1.5e-13 * 1e-4
KT = sc.k * TEMPERATURE_K / sc.e

# --- scenario choices
TARGETS = {"K": 0.15, "Rb": 0.07, "Cs": 0.03}
FRONT_NM = 100.0          # replacement depth aimed at
SURFACE_V = 3.0           # surface potential aimed at (sets the back field)
THETA_FRONT = 0.5         # front reservoir occupancy (only the double-layer estimate uses it)
THICKNESS_NM = 250.0      # back reservoir depth: bulk beyond the replaced zone
MESH = MeshSpec(n_cells=300, h_surface_nm=0.15, zone_nm=150.0)  # plateau converged to 0.03 %

LI_D = SEDDiffusivity(GaussianSED(0.0, FWHM_EV), D_LI_BULK_M2_S, F_VAC, KT, filling="step")


def rule_of_thumb_D(plateau):
    """The paper's rule: the plateau sits where D_Li(x) = D_foreign / 10."""
    return 10.0 * float(LI_D.D(np.array([plateau]))[0])


def problem(phases, species, d_models, times, mesh=MESH, rtol=1e-4):
    return NPPProblem(species=species, d_models=d_models, native="Li", n_bulk_m3=N_BULK_M3,
                      thickness_m=THICKNESS_NM * 1e-9, phases=tuple(phases),
                      output_times_s=tuple(times), f_vac=F_VAC, temperature_K=TEMPERATURE_K,
                      mesh=mesh, rtol=rtol, atol=rtol * 1e-3)


def front_and_plateau(depth, li):
    """Front depth [nm] (Li = 0.5) and plateau (Li at half the front depth)."""
    k = np.flatnonzero(li > 0.5)[0]
    front = np.interp(0.5, [li[k - 1], li[k]], [depth[k - 1], depth[k]])
    return front, float(np.interp(0.5 * front, depth, li))


def run_single(ion, d_foreign, back_field, duration, mesh=MESH, solver=solve_electroneutral):
    ds = solver(problem([Phase(ion, duration, "galvanostatic", back_field, theta_front=THETA_FRONT)],
                        ("Li", ion), (LI_D, ConstantD(d_foreign)), [duration], mesh=mesh))
    li = ds.concentration.sel(species="Li").values[-1]
    front, plateau = front_and_plateau(ds.depth.values, li)
    if "surface_potential" in ds:
        surface = float(ds.surface_potential.values[-1])
        layer = float(ds.double_layer_potential.values[-1])
    else:   # full solver: phi at the front node (includes the resolved surface layer)
        surface, layer = float(ds.potential.values[-1, 0]), 0.0
    return dict(front=front, plateau=plateau, surface=surface, layer=layer, ds=ds)


def field_and_duration(d_foreign, plateau):
    """Back field giving SURFACE_V over the replaced zone, duration bringing the front to FRONT_NM.

    Behind the front the foreign ion carries the current, J = sigma_bulk E_back, with
    conductivity ~ D_f (1 - p): E_replaced = E_back D_Li,bulk / (D_f (1 - p)).  Rankine-Hugoniot:
    the front moves at j / (1 - p), j = D_Li,bulk e E_back / kT.
    """
    back_field = SURFACE_V * d_foreign * (1 - plateau) / (D_LI_BULK_M2_S * FRONT_NM * 1e-9)
    j = D_LI_BULK_M2_S * back_field / KT
    return back_field, FRONT_NM * 1e-9 * (1 - plateau) / j


def calibrate(ion, target):
    """Secant iteration on log D_foreign for the plateau, with the field/duration re-derived
    each time (the plateau depends weakly on the front Peclet number)."""
    d_rule = rule_of_thumb_D(target)
    field, duration = field_and_duration(d_rule, target)
    rule = run_single(ion, d_rule, field, duration)
    logs, plats = [np.log(d_rule)], [rule["plateau"]]
    d = d_rule * (target / rule["plateau"]) ** 3      # first guess: plateau ~ D^(1/3) locally
    for _ in range(8):
        field, duration = field_and_duration(d, target)
        res = run_single(ion, d, field, duration)
        logs.append(np.log(d))
        plats.append(res["plateau"])
        if abs(res["plateau"] - target) < 2e-4:
            break
        slope = (plats[-1] - plats[-2]) / (logs[-1] - logs[-2])
        d = float(np.exp(logs[-1] + (target - plats[-1]) / slope))
    # a final duration correction to land the front at FRONT_NM (front speed is constant)
    duration *= FRONT_NM / res["front"]
    res = run_single(ion, d, field, duration)
    return dict(ion=ion, target=target, d_rule=d_rule, rule_plateau=rule["plateau"], D=d,
                field=field, duration=duration, **res)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-full", action="store_true", help="skip the full NPP cross-check")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = [calibrate(ion, p) for ion, p in TARGETS.items()]

    print("\n| ion | D_foreign [cm^2/s] | back_field [V/m] | duration [s] | duration [h] | "
          "plateau | front [nm] | surface potential [V] | double layer [V] |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['ion']} | {r['D'] * 1e4:.3e} | {r['field']:.4g} | {r['duration']:.4g} | "
              f"{r['duration'] / 3600:.2f} | {100 * r['plateau']:.2f} % | {r['front']:.1f} | "
              f"{r['surface']:.2f} | {r['layer']:.3f} |")

    print("\nRule of thumb (plateau where D_Li(x) = D_foreign/10):")
    print("| ion | target | D_rule = 10 D_Li(target) [cm^2/s] | plateau with D_rule | "
          "calibrated D / D_rule | D_foreign / D_Li(calibrated plateau) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["D"] / float(LI_D.D(np.array([r["plateau"]]))[0])
        print(f"| {r['ion']} | {100 * r['target']:.0f} % | {r['d_rule'] * 1e4:.3e} | "
              f"{100 * r['rule_plateau']:.2f} % | {r['D'] / r['d_rule']:.3f} | {ratio:.2f} |")

    # flatness of the plateau and mesh sensitivity (K: the widest rarefaction at the surface)
    print("\nPlateau profile (Li fraction at fractions of the front depth) and mesh refinement:")
    for r in rows:
        z, li = r["ds"].depth.values, r["ds"].concentration.sel(species="Li").values[-1]
        vals = [np.interp(f * r["front"], z, li) for f in (0.1, 0.25, 0.5, 0.75)]
        print(f"  {r['ion']}: x/front = 0.1, 0.25, 0.5, 0.75 -> "
              + ", ".join(f"{100 * v:.2f} %" for v in vals) + f"; Li(x=0) {100 * li[0]:.2f} %")
    k = rows[0]
    for n, h in ((200, 0.2), (400, 0.1), (800, 0.05)):
        res = run_single("K", k["D"], k["field"], k["duration"],
                         mesh=MeshSpec(n_cells=n, h_surface_nm=h, zone_nm=150.0))
        print(f"  K, {n} cells (h_surface {h} nm): plateau {100 * res['plateau']:.3f} %, "
              f"front {res['front']:.2f} nm, surface {res['surface']:.4f} V")

    # double CAIT: Rb to ~100 nm, then Cs, then 2 h with the beam off
    rb, cs = rows[1], rows[2]
    cs_duration = 0.5 * cs["duration"]
    phases = [Phase("Rb", rb["duration"], "galvanostatic", rb["field"], theta_front=THETA_FRONT),
              Phase("Cs", cs_duration, "galvanostatic", cs["field"], theta_front=THETA_FRONT),
              Phase(None, 7200.0, "off")]
    ends = np.cumsum([p.duration_s for p in phases])
    ds = solve_electroneutral(problem(phases, ("Li", "Rb", "Cs"),
                                      (LI_D, ConstantD(rb["D"]), ConstantD(cs["D"])), ends))
    print("\nDouble CAIT (Rb, then Cs, then 2 h off):")
    print(f"  phases: Rb {rb['duration']:.4g} s at {rb['field']:.4g} V/m; Cs {cs_duration:.4g} s "
          f"at {cs['field']:.4g} V/m; off 7200 s")
    z = ds.depth.values
    for k, t in enumerate(ends):
        c = {s: ds.concentration.sel(species=s).values[k] for s in ("Li", "Rb", "Cs")}
        front_li, plateau = front_and_plateau(z, c["Li"])
        cs_front = z[np.flatnonzero(c["Cs"] < 0.5)[0]] if c["Cs"][0] > 0.5 else 0.0
        print(f"  t = {t:.4g} s: Li front {front_li:.1f} nm, Li at front/2 {100 * plateau:.2f} %, "
              f"Cs front (0.5) {cs_front:.1f} nm, Li(x=0) {100 * c['Li'][0]:.2f} %, "
              f"Rb max {c['Rb'].max():.3f}, surface {ds.surface_potential.values[k]:.2f} V")

    if not args.no_full:
        from continuum.npp import solve
        r = rows[0]
        t1 = time.perf_counter()
        full = run_single(r["ion"], r["D"], r["field"], r["duration"], solver=solve)
        en = run_single(r["ion"], r["D"], r["field"], r["duration"])
        print(f"\nFull NPP cross-check ({r['ion']}, same mesh, {time.perf_counter() - t1:.1f} s):")
        print(f"  plateau: full {100 * full['plateau']:.3f} %, electroneutral "
              f"{100 * en['plateau']:.3f} %")
        print(f"  front: full {full['front']:.2f} nm, electroneutral {en['front']:.2f} nm")
        print(f"  surface potential: full {full['surface']:.4f} V, electroneutral "
              f"{en['surface']:.4f} + double layer {en['layer']:.4f} = "
              f"{en['surface'] + en['layer']:.4f} V")
    print(f"\ntotal wall time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
