"""`cait fit PROFILES INPUT`: fit NPP to measured depth profiles (docs/fitting.md)."""
from __future__ import annotations


def _run(args) -> int:
    from compare.workflows.fit import fit_files

    ds, nc, png = fit_files(args.profiles, args.input, out_dir=args.output, quiet=args.quiet)
    if not args.quiet:
        for name, best, se, lo, hi in zip(ds["param"].values, ds["best"].values,
                                          ds["stderr_natural"].values,
                                          ds["lower_1sigma"].values, ds["upper_1sigma"].values):
            print(f"  {name} = {best:.5g} ± {se:.2g}  (1 sigma: [{lo:.4g}, {hi:.4g}])")
        print(f"  chi2 = {float(ds['chi2']):.5g}, reduced chi2 = {float(ds['reduced_chi2']):.4g}"
              f", {int(ds['n_evaluations'])} evaluations, {float(ds['wall_time']):.1f} s")
        if ds.attrs["fit_message"]:
            print(f"  note: {ds.attrs['fit_message']}")
        print(f"wrote {nc} and {png}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "fit", help="fit NPP parameters to measured depth profiles",
        description="Fit the free parameters named in the input's [fit] section (SED FWHM, SED "
                    "centre, D of each species, vacancy fraction) to depth profiles by bounded "
                    "least squares from several starts. Writes fit.nc (best values, standard "
                    "errors, correlations, profiles, residuals) and fit.png.")
    p.add_argument("profiles", metavar="PROFILES",
                   help="CSV file (depth_nm, one column per species, optional NAME_err) or a "
                        "KMC/NPP dataset (.nc)")
    p.add_argument("input", metavar="INPUT", help="input file (TOML) with a [fit] section")
    p.add_argument("-o", "--output", metavar="DIR", default=None,
                   help="output folder (default: outputs/<input name>_fit)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_run)
