"""`cait dn INPUT`: the native D(x) three ways (SED formula, equilibrium KMC, NPP fit to KMC)."""
from __future__ import annotations

from compare.commands._args import add_replicas


def _run(args) -> int:
    from compare.commands._args import replicas, x_list
    from compare.workflows.dn import run_dn

    xs = x_list(args.x) if args.x is not None else None
    run_dn(args.input, out_dir=args.output, xs=xs, replicas=replicas(args), reuse=args.reuse,
           fit=args.fit, kmc_dataset=args.kmc_dataset, quiet=args.quiet)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "dn", help="native D(x) three ways on one plot (paper Fig. 2) -> dn.nc, dn.png",
        description="D_native(x) (x = native fraction) from (a) the SED formula scaled to the "
                    "KMC bulk D, (b) equilibrium KMC (D_eff = kT L_ss/n_s and 2 D*, with "
                    "standard errors; runs `cait kmc equilibrium` unless --reuse finds its "
                    "dataset), (c) optionally NPP fitted to a KMC CAIT dataset (--fit). "
                    "Writes DIR/dn.nc and DIR/dn.png.")
    p.add_argument("input", help="input file (TOML) with a native and a foreign species")
    p.add_argument("-o", "--output", metavar="DIR", default=None,
                   help="output folder (default: outputs/<input name>, where `cait kmc` writes)")
    p.add_argument("--x", metavar="LIST", default=None,
                   help="KMC compositions, comma-separated (default 0.3,0.5,0.7,0.85,1; x = 1 "
                        "is always added: it sets the scale of the SED formula)")
    add_replicas(p)
    p.add_argument("--reuse", action="store_true",
                   help="reuse DIR/kmc_equilibrium.nc of the same input instead of running KMC")
    p.add_argument("--fit", action="store_true",
                   help="(c): fit NPP to the KMC CAIT profiles of DIR/kmc.nc (from `cait kmc "
                        "run`) or --kmc-dataset")
    p.add_argument("--kmc-dataset", metavar="PATH", default=None,
                   help="KMC CAIT dataset for --fit (default DIR/kmc.nc)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_run)
