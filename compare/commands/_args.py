"""Options shared by several sub-commands, parsed one way everywhere."""
from __future__ import annotations

from compare.errors import ConfigError


def x_list(text: str) -> tuple:
    """``"0.2,0.5,1"`` -> (0.2, 0.5, 1.0), each in [0, 1]."""
    try:
        xs = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ConfigError(f"`--x` must be a comma-separated list of numbers, got {text!r}") from None
    if not xs or any(not 0.0 <= x <= 1.0 for x in xs):
        raise ConfigError(f"`--x` values must lie in [0, 1] (x = n_native/(n_native+n_foreign)), "
                          f"got {text!r}")
    return xs


def replicas(args):
    """``--replicas`` as an int >= 1, or None when not given (the input's ``kmc.replicas``)."""
    if args.replicas is None:
        return None
    try:
        n = int(args.replicas)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"`--replicas` must be an integer >= 1, got {args.replicas!r}")
    return n


def add_replicas(p) -> None:
    p.add_argument("--replicas", type=str, default=None,
                   help="KMC replicas, run in parallel with dask (default: [kmc] replicas)")


def add_quiet(p, what="no progress output") -> None:
    p.add_argument("--quiet", action="store_true", help=what)
