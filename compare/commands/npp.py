"""`cait npp run INPUT [-o DIR] [--quiet]`: full Nernst-Planck-Poisson depth profiles."""
from __future__ import annotations


def _run(args) -> int:
    from compare.io.config import load_config
    from compare.workflows.run_npp import run_npp

    from compare.io.outputs import default_output

    cfg = load_config(args.input)
    ds, paths = run_npp(cfg, args.output or default_output(cfg), progress=not args.quiet)
    if not args.quiet:
        print(f"NPP ({ds.attrs['flux_convention']}): {ds.attrs['n_steps']} steps, "
              f"{ds.attrs['n_newton']} Newton iterations, {ds.attrs['n_rejected']} rejected")
        for p in paths:
            print(f"wrote {p}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("npp", help="continuum (Nernst-Planck-Poisson) depth profiles",
                       description="The continuum solver on an input file (docs/npp.md).")
    nsub = p.add_subparsers(dest="npp_command", metavar="ACTION", required=True)
    r = nsub.add_parser("run", description="Solve the NPP equations of the input ([npp] solver: "
                        "full Poisson or the electroneutral limit) through its beam schedule; "
                        "writes npp.nc, npp_profiles.png and npp_potential.png.",
                        help="solve the full NPP equations for an input file; writes "
                                    "npp.nc and figures")
    r.add_argument("input", help="input file (TOML)")
    r.add_argument("-o", "--output", default=None,
                   help="output folder (default: outputs/<input name>)")
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    r.set_defaults(func=_run)
