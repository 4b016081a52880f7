"""`cait kmc run|equilibrium|plateau`: the KMC engine on an input file (see docs/kmc_workflow.md)."""
from __future__ import annotations

from compare.commands._args import add_quiet, add_replicas, replicas, x_list


def _run(args) -> int:
    from compare.workflows.run_kmc import run_kmc

    return run_kmc(args.input, out_dir=args.output, replicas=replicas(args),
                   scheduler=args.scheduler, resume=args.resume, quiet=args.quiet)


def _equilibrium(args) -> int:
    from compare.workflows.run_kmc import run_equilibrium

    return run_equilibrium(args.input, x_list(args.x), out_dir=args.output,
                           replicas=replicas(args), scheduler=args.scheduler, quiet=args.quiet)


def _plateau(args) -> int:
    from compare.workflows.run_kmc import reanalyze

    return reanalyze(args.kmc_nc, quiet=args.quiet)


def _common(p) -> None:
    p.add_argument("input", help="scenario input file (TOML)")
    p.add_argument("-o", "--output", default=None,
                   help="output folder (default: outputs/<input name>)")
    add_replicas(p)
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="address of a running dask scheduler (default: a private local cluster)")
    add_quiet(p, "no progress bar")


def register(sub) -> None:
    p = sub.add_parser("kmc", help="kinetic Monte Carlo: CAIT runs and equilibrium transport",
                       description="The KMC engine on an input file (docs/kmc_workflow.md).")
    ksub = p.add_subparsers(dest="kmc_command", metavar="MODE", required=True)
    pr = ksub.add_parser("run", help="CAIT run of the input's beam schedule -> kmc.nc + figures",
                         description="Run the input's beam schedule on the [kmc] lattice (replicas in "
                                     "parallel with dask), with checkpoints; writes kmc.nc and "
                                     "kmc_profiles.png. SIGINT/SIGTERM write a checkpoint and the "
                                     "partial dataset; --resume continues exactly.")
    _common(pr)
    pr.add_argument("--resume", action="store_true",
                    help="continue from the checkpoint in the output folder (same input only)")
    pr.set_defaults(func=_run)
    pe = ksub.add_parser("equilibrium", description="Equilibrium KMC on a periodic eq_size^3 "
                         "lattice at each composition x: tracer D*, Onsager L_ij, Haven ratios and "
                         "D_eff with standard errors from independent blocks; writes "
                         "kmc_equilibrium.nc, a figure and D_eff_<species>.csv tables.",
                         help="tracer D*, Onsager L, Haven ratio, D_eff vs "
                         "composition -> kmc_equilibrium.nc + figures")
    _common(pe)
    pe.add_argument("--x", required=True, metavar="LIST",
                    help="compositions x = n_native/(n_native+n_foreign), comma-separated, e.g. "
                         "0.2,0.5,0.8,1")
    pe.set_defaults(func=_equilibrium)
    pp = ksub.add_parser("plateau", help="(re)compute the plateau analysis of a kmc.nc",
                         description="Recompute the plateau analysis of a finished CAIT run from "
                                     "its own kmc.nc and stored input: front and native plateau "
                                     "per replica and time, the change over the last third, and "
                                     "the measured D_native,bulk / D_foreign (docs/plateau.md); "
                                     "the file is rewritten in place.")
    pp.add_argument("kmc_nc", help="kmc.nc written by `cait kmc run`")
    add_quiet(pp, "no summary line")
    pp.set_defaults(func=_plateau)
