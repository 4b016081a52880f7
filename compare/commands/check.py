"""`cait check onsager`: physics studies that are not part of a scenario run."""
from __future__ import annotations


def _onsager(args) -> int:
    from compare.checks.onsager import run

    return run(args)


def register(sub) -> None:
    from compare.checks.onsager import add_arguments

    p = sub.add_parser("check", help="physics studies of the engines (Onsager coefficients)",
                       description="Physics studies that are not part of a scenario run.")
    csub = p.add_subparsers(dest="check_target", metavar="STUDY", required=True)
    po = csub.add_parser(
        "onsager", help="equilibrium KMC L_ij, Haven ratios and D_eff = 2 D* over x and SED width",
        description="Equilibrium KMC on a periodic lattice: the Onsager coefficients of two "
                    "identical species against their exact relations, Haven ratios, and where "
                    "D_eff = 2 D* holds (docs/findings.md). Writes onsager_scan.nc and figures; "
                    "prints the table.")
    add_arguments(po)
    po.set_defaults(func=_onsager)
