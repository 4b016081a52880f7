"""continuum.problem.check_problem: one validation for both NPP solvers."""
import dataclasses

import numpy as np
import pytest

from continuum.dmodel import ConstantD
from continuum.electroneutral import solve_electroneutral
from continuum.errors import ProblemError
from continuum.npp import solve
from continuum.problem import MeshSpec, NPPProblem, Phase, check_problem, mesh_nodes_nm


def _problem(**kw):
    args = dict(species=("Li", "K"), d_models=(ConstantD(1e-17), ConstantD(1e-19)), native="Li",
                n_bulk_m3=1.4e28, thickness_m=50e-9, phases=(Phase("K", 10.0, back_field_V_per_m=1e5),),
                output_times_s=(0.0, 10.0), mesh=MeshSpec(n_cells=60, h_surface_nm=0.2))
    args.update(kw)
    return NPPProblem(**args)


COMMON = [
    (dict(native="Na"), r"`native` = 'Na' is not one of"),
    (dict(flux_convention="fick"), r"`flux_convention` = 'fick' unknown; legal: lattice-gas, "
                                   r"nernst-planck"),
    (dict(back="wall"), r"`back` = 'wall' unknown; legal: bulk, electrode"),
    (dict(phases=(Phase("K", 1.0, "pulsed"),)), r"phase 0: `drive` = 'pulsed' unknown"),
    (dict(phases=(Phase("Li", 1.0),)), r"phase 0: beam species 'Li' is not a foreign species"),
    (dict(phases=(Phase("K", 0.0),)), r"phase 0: `duration_s` must be > 0"),
    (dict(output_times_s=(0.0, 20.0)), r"`output_times_s` must lie in \[0, 10\] s"),
    (dict(f_vac=1.0), r"`f_vac` must be in \[0, 1\), got 1.0"),
    (dict(rtol=0.0), r"`rtol` must be > 0, got 0.0"),
    (dict(d_models=(ConstantD(1e-17),)), r"need one D model per species \(2\), got 1"),
]


@pytest.mark.parametrize("solver_name, run", [("full", solve), ("electroneutral", solve_electroneutral)])
@pytest.mark.parametrize("change, match", COMMON)
def test_both_solvers_refuse_a_bad_problem_with_the_same_message(solver_name, run, change, match):
    bad = _problem(**change)
    with pytest.raises(ProblemError, match=match):
        check_problem(bad, solver=solver_name)
    with pytest.raises(ProblemError, match=match):
        run(bad)


def test_solver_specific_rules():
    charged = _problem(charges=(1, 2))
    check_problem(charged, "full")
    with pytest.raises(ProblemError, match=r"needs z = \+1"):
        check_problem(charged, "electroneutral")
    alone = _problem(species=("Li",), d_models=(ConstantD(1e-17),),
                     phases=(Phase(None, 10.0, "off"),))
    check_problem(alone, "full")
    with pytest.raises(ProblemError, match=r"needs >= 2 species"):
        check_problem(alone, "electroneutral")
    with pytest.raises(ProblemError, match=r"`solver` = 'fem' unknown"):
        check_problem(_problem(), "fem")


def test_full_solver_mesh_is_checked_and_public():
    with pytest.raises(ProblemError, match="too small"):
        check_problem(_problem(mesh=MeshSpec(n_cells=10, h_surface_nm=0.01)), "full")
    nodes = mesh_nodes_nm(_problem())
    assert nodes[0] == 0.0 and nodes[-1] == pytest.approx(50.0) and nodes.size == 61
    assert np.all(np.diff(nodes) > 0)
    assert _problem().total_duration_s == 10.0
    assert dataclasses.replace(_problem(), phases=(Phase("K", 4.0), Phase(None, 6.0, "off"))
                               ).total_duration_s == 10.0
