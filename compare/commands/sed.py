"""`cait sed INPUT [-o DIR]`: SED, populated SED, E_F(n) and D(n) of the input's material."""
from __future__ import annotations


def _run(args) -> int:
    from compare.io.config import load_config
    from compare.workflows.run_sed import run_sed

    from compare.io.outputs import default_output

    cfg = load_config(args.input)
    paths = run_sed(cfg, args.output or default_output(cfg))
    for p in paths.values():
        print(p)
    return 0


def register(sub) -> None:
    p = sub.add_parser("sed", help="site energy distribution, E_F(n) and D(n) table and plots",
                       description="Write sed.nc (SED, populated SED at bulk filling, E_F(fraction), "
                                   "D(fraction) per species) and the figures sed.png and dn.png.")
    p.add_argument("input", help="input file (TOML)")
    p.add_argument("-o", "--output", default=None,
                   help="output folder (default: outputs/<input name>)")
    p.set_defaults(func=_run)
