"""The hot loop (numba): arrays and scalars only, every option resolved to integers beforehand.

Events are indexed by their **target vacancy** (docs/physics.md §5, STYLE.md "events vs selection"):
a hop needs a vacant target, 10 % of the sites are vacant, so an event changes the rates of its
two sites and of their *vacant* neighbours only (~3 leaves per event, against ~13 when events are
indexed by the moving ion, whose occupied neighbours all see a target vacancy come or go).

* per layer ``l`` a 3-class wide sum tree ``wt[l, :]`` (selectors.py ``wide_*``: fan-out 8,
  ``ip[I_H]`` levels above the leaves, group offsets ``goff``) whose leaves (level 0, leaf
  ``r = y nz + z`` at ``LEAF(r, c) = 24 (r >> 3) + 8 c + (r & 7)``) are the target rates of the vacant
  site ``v = l m + r`` (0 if occupied) = *site part* of the rates of the hops into ``v``:
  0 = from behind (the ion at ``v - m`` hops +x, crosses gap ``l``; in layer 0 of an open lattice:
  insertion from the front reservoir), 1 = from ahead (the ion at ``v + m`` hops -x, crosses gap
  ``l + 1``; in layer nx-1: insertion from the back reservoir), 2 = lateral (4 bonds, summed in
  the order +y, -y, +z, -z);
* two exit trees ``ex[0]`` (ion of layer 0 -> front reservoir, gap 0) and ``ex[1]`` (ion of layer
  nx-1 -> back reservoir / electrode, gap nx) over the sites of those layers;
* a top tree (wide, one class, offsets ``goff_t``, ``ip[I_HT]`` levels) over ``nx + 3`` groups
  [front exit, layer 0 .. nx-1, back exit, beam arrival] with
  weights ``gf[l] F_l + gb[l+1] B_l + L_l`` (gap factors times class roots); the beam group
  (galvanostatic drive) has the constant weight ``fp[F_RBEAM]`` and adds one charge to the front
  surface charge ``F0`` (``ist[S_F0]``, electrostatics.py).
Order of events (shared by the tree and the linear reference): group, class, site, neighbour.

Declared update radius of an event changing the occupancy of sites i (and j): leaves of i and j
(all classes), of their vacant neighbours (the class pointing at i or j), exit leaves of i and j;
top weights of the layers holding those sites and of the groups next to the gap whose field
changed (groups g, g + 1 for gap g); all groups after a uniform shift (potentiostatic hop, beam
arrival).

Structure: :func:`run` receives the state in named groups (``Lattice``, ``Trees``, ``Ions``,
``Field``, ``Tally``, ``Clock``, ``Setup``, ``Records``), unpacks them once and defines the pieces
of an event as inner functions that capture the arrays: ``leaf`` / ``exit_rate`` (rates),
``draw``, ``pick_group``, ``pick_class``, ``pick_target``, ``pick_origin`` (selection),
``hop``, ``insert``, ``leave``, ``beam`` (events), ``cross_gap``, ``refresh_exit``, ``queue``,
``refresh_layers``, ``walk_layer``, ``walk_top``, ``refresh_top`` (the declared update radius).
Numba inlines them; the event loop at the end of ``run`` reads as the list above. Module-level
helpers taking the arrays as arguments would be inlined too, but measured 3-5 % slower at 20^3
(each call rebinds its array arguments); captured arrays are not rebound. The tree descents are
the operations of ``selectors.wide_pick`` (the linear selector runs that function itself; the
tree and linear selectors give the same trajectory, tests/unit/kmc/test_engine.py).
``MODE_REBUILD`` runs the same ``leaf`` code over every site, so a rebuild and the incremental
updates agree bitwise by construction.
"""
from collections import namedtuple

import numpy as np
from numba import njit

from .rates import TRAP, site_rate
from .selectors import TREE, pick, total, wide_init, wide_pick, wide_total

# ipar slots
I_MODEL, I_SEL, I_PERIODIC, I_BACKKIND, I_DRIVE, I_ACTIVE, I_FRONTOPEN, I_NX, I_NY, I_NZ = range(10)
# I_P: leaves of the exit trees (= ny nz); I_H / I_HT: levels of a layer's / the top wide tree
# above its leaves
I_P, I_HT, I_HIST, I_IONS, I_LPS, I_NBINS, I_BACKOPEN, I_FIELD, I_H = range(10, 19)
# I_GROW: moving back boundary (docs/kmc.md "Active depth"): a foreign ion hopping forward into
# a layer >= ip[I_GROW] ends the call after its event with status 4 (the engine appends layers);
# ip[I_NX] is then the active depth, not the lattice's. Off: a value >= nx.
I_GROW = 19
N_IPAR = 20
# fpar slots
# F_EBACK: the external uniform field E_ext (electrostatics off; periodic); F_RBEAM: beam arrivals/s;
# F_BCAP: the bond cap exp(-E_cap/kT) of kmc.rates.site_rate (inf: off, plain KMC)
F_BETA, F_A, F_C, F_EBACK, F_U, F_THF, F_THB, F_BRESF, F_BRESB, F_HBQA, F_TSTOP, F_RBEAM, F_BCAP = range(13)
N_FPAR = 13
# ist slots (checkpointed integer state); S_F0: net surface charge at the front [e]
S_NEV, S_OUTK, S_NFREE, S_PHASE, S_F0 = range(5)
N_IST = 5
# event counters per species (C_BEAM: beam arrivals, counted for the active foreign species)
C_FWD, C_BWD, C_LAT, C_FRONT_IN, C_FRONT_OUT, C_BACK_IN, C_BACK_OUT, C_BEAM = range(8)
N_COUNTERS = 8
COUNTER_NAMES = ("hop_forward", "hop_backward", "hop_lateral", "front_in", "front_out",
                 "back_in", "back_out", "beam_in")
BACK_BULK = 0
BACK_ELECTRODE = 1
# Version of the event order (which event a given random number picks); checkpointed, a resume
# needs the same. 1: events indexed by the moving ion, binary trees (before 2026-11-28);
# 2: indexed by the target vacancy, wide trees.
EVENT_ORDER = 2


@njit(cache=True, inline="always")
def _group_weight(g, wt, goff, ex, gf, gb, ip, fp):
    nx = ip[I_NX]
    P = ip[I_P]
    H = ip[I_H]
    m = ip[I_NY] * ip[I_NZ]
    kind = ip[I_SEL]
    if g == 0:
        return gb[0] * total(ex, 0, P, m, 0, kind)
    if g == nx + 1:
        return gf[nx] * total(ex, 1, P, m, 0, kind)
    if g == nx + 2:
        return fp[F_RBEAM]
    l = g - 1
    return (gf[l] * wide_total(wt, l, goff, H, m, 0, 3, kind)
            + gb[l + 1] * wide_total(wt, l, goff, H, m, 1, 3, kind)
            + wide_total(wt, l, goff, H, m, 2, 3, kind))


@njit(cache=True)
def rebuild_top(wt, goff, ex, top, goff_t, gf, gb, ip, fp):
    """All group weights and the top tree from scratch. O(nx)."""
    nx = ip[I_NX]
    top[:] = 0.0
    for g in range(nx + 3):
        top[0, g] = _group_weight(g, wt, goff, ex, gf, gb, ip, fp)   # leaf g of level 0
    wide_init(top, 0, goff_t, ip[I_HT], 0, 1, ip[I_SEL])


@njit(cache=True)
def fields(E, gf, gb, G, BG, ip, fp):
    """Gap fields [V/m] and factors from the integer front-referenced counts ``G`` (int64,
    (nx+2,)): ``E_g = e0 + c (G_g - BG_g)`` (see kmc/electrostatics.py)."""
    nx = ip[I_NX]
    h = fp[F_HBQA]
    if ip[I_PERIODIC]:
        # periodic: uniform applied field fp[F_EBACK], no space charge
        e0 = fp[F_EBACK]
        for g in range(nx + 1):
            E[g] = e0
            gf[g] = np.exp(h * e0)
            gb[g] = np.exp(-h * e0)
        return
    c = fp[F_C]
    if ip[I_DRIVE] == 2:
        bgsum = 0.0
        for g in range(nx + 1):
            bgsum += BG[g]
        e0 = (fp[F_U] / fp[F_A] - c * (G[nx + 1] - bgsum)) / (nx + 1)
    else:
        e0 = fp[F_EBACK]
    for g in range(nx + 1):
        E[g] = e0 + c * (G[g] - BG[g])
        gf[g] = np.exp(h * E[g])
        gb[g] = np.exp(-h * E[g])


@njit(cache=True)
def _record(k, occ, ebin, cnt, E, counters, coll, ion_disp, ist, ip,
            r_cnt, r_E, r_counters, r_coll, r_hist, r_ion, r_nev, r_nxa):
    r_cnt[k] = cnt
    # gaps beyond an active depth lie in the neutral frozen bulk: the back gap's field
    ng = E.shape[0]
    r_E[k, :ng] = E
    r_E[k, ng:] = E[ng - 1]
    r_nxa[k] = ip[I_NX]
    r_counters[k] = counters
    r_coll[k] = coll
    r_nev[k] = ist[S_NEV]
    if ip[I_HIST]:
        m = ip[I_NY] * ip[I_NZ]
        lps = ip[I_LPS]
        h = r_hist[k]
        for i in range(occ.shape[0]):
            sp = occ[i]
            if sp >= 0:
                h[(i // m) // lps, ebin[sp, i], sp] += 1
    if ip[I_IONS]:
        r_ion[k] = ion_disp


# ------------------------------------------------------------------------------------ state
# The kernel's arrays in groups, packed by kmc.engine for each call (named tuples: numba unpacks
# them once at entry, the pieces below capture the unpacked arrays).
Lattice = namedtuple("Lattice", "occ bfac nu orate ebin")
Trees = namedtuple("Trees", "wt goff ex top goff_t dirty dlist")
Ions = namedtuple("Ions", "site_ion ion_sp ion_site ion_disp free_ids")
# gint (2, nx_lattice + 2): time integrals of the gap counts G since the last output time
# (row 0; the last column integrates the sum slot G[nx + 1]) and the time each was last
# brought up to date (row 1): the interval-averaged fields r_Eavg (checkpointed)
Field = namedtuple("Field", "G BG E gf gb gint")
Tally = namedtuple("Tally", "cnt coll counters")
Clock = namedtuple("Clock", "rng clock ist")
# evlog: optional event log (n, 3) int64, row ist[S_NEV] % n = (origin site or -1, target
# site or -1, class 0/1/2 or -1): diagnostics only (scripts/rattle_census.py); (0, 3) = off
Setup = namedtuple("Setup", "ip fp out_times evlog")
Records = namedtuple("Records", "r_cnt r_E r_counters r_coll r_hist r_ion r_nev r_nxa r_Eavg")

MODE_ADVANCE = 0   # run events
MODE_REBUILD = 1   # recompute every rate, tree, field and group weight from the state


@njit(cache=True)
def run(mode, lat, trees, ions, field, tally, clk, setup, rec, ev_stop):
    """The kernel: ``MODE_ADVANCE`` runs events until ``ist[S_NEV] == ev_stop`` (return 0), the
    phase end ``fp[F_TSTOP]`` (return 1), until no event is possible (time jumps to the phase
    end, return 2) or until the total rate or the clock is not finite (return 3, state left as
    before that event), or after an event that moved a foreign ion forward into layer
    ``ip[I_GROW]`` or deeper (return 4: the engine appends layers, then calls again).
    ``MODE_REBUILD`` recomputes every leaf, tree, field and group weight
    from the occupancy (returns 0).

    The pieces of an event are inner functions: numba inlines them, and because they capture
    the arrays instead of taking them as arguments, the inlined code is as fast as the same
    statements written out (module-level helpers with array arguments measured 3-5 % slower).
    Rebuild and incremental updates run the same leaf code, so they agree bitwise.

    Returning never discards random numbers except at a phase end, which every run shares, so
    chunking does not change the trajectory (exact resume).
    """
    occ, bfac, nu, orate, ebin = lat.occ, lat.bfac, lat.nu, lat.orate, lat.ebin
    wt, goff, ex, top, goff_t = trees.wt, trees.goff, trees.ex, trees.top, trees.goff_t
    dirty, dlist = trees.dirty, trees.dlist
    site_ion, ion_sp, ion_site = ions.site_ion, ions.ion_sp, ions.ion_site
    ion_disp, free_ids = ions.ion_disp, ions.free_ids
    G, BG, E, gf, gb, gint = field.G, field.BG, field.E, field.gf, field.gb, field.gint
    cnt, coll, counters = tally.cnt, tally.coll, tally.counters
    rng, clock, ist = clk.rng, clk.clock, clk.ist
    ip, fp, out_times, evlog = setup.ip, setup.fp, setup.out_times, setup.evlog
    nlog = evlog.shape[0]
    gsum = gint.shape[1] - 1      # the sum slot of gint (G[nx + 1] of the active depth)
    integrate = ip[I_FIELD] == 1 and not ip[I_PERIODIC]
    nx = ip[I_NX]
    ny = ip[I_NY]
    nz = ip[I_NZ]
    m = ny * nz
    P = ip[I_P]
    H = ip[I_H]
    Ht = ip[I_HT]
    troot = 8 * goff_t[Ht]      # the top tree's root: top[0, troot]
    root = 24 * goff[H]         # class c root of a layer tree: wt[l, root + 8 c]
    kind = ip[I_SEL]
    tree = kind == TREE
    periodic = ip[I_PERIODIC]
    model = ip[I_MODEL]
    trap = model == TRAP
    # bond cap (kmc.rates.site_rate; inf: off). With trap rates a bond can be capped only if its
    # origin rate orate exceeds nu_s bcap >= ocap: every other hop keeps the one-read shortcut
    bcap = fp[F_BCAP]
    capped = bcap < np.inf
    ocap = bcap * np.min(nu) if capped else np.inf
    # ion identities (site_ion, ion_site, ion_sp, ion_disp, free_ids) only when recorded
    track = ip[I_IONS] != 0
    backopen = ip[I_BACKOPEN]
    backbulk = ip[I_BACKKIND] == BACK_BULK
    frontopen = ip[I_FRONTOPEN]
    active = ip[I_ACTIVE]
    thb = fp[F_THB]
    thf = fp[F_THF]
    bresf = fp[F_BRESF]
    bresb = fp[F_BRESB]
    pot = ip[I_DRIVE] == 2 and ip[I_FIELD] == 1
    grow = ip[I_GROW]
    t_stop = fp[F_TSTOP]
    n_out = out_times.shape[0]
    # queue of changed leaves of one event (<= 2 sites x (1 + 6 neighbours)):
    # site, layer, y, z, class mask, leaf index r (then: -1 for an anchor, else its anchor)
    ent = np.zeros((16, 6), dtype=np.int64)

    # ------------------------------------------------------------------ rates (leaves)
    def lateral(v, y, z, q):
        """Lateral neighbour q of site v (+y, -y, +z, -z; the order of the leaf sums)."""
        if q == 0:
            return v - (ny - 1) * nz if y == ny - 1 else v + nz
        if q == 1:
            return v + (ny - 1) * nz if y == 0 else v - nz
        if q == 2:
            return v - (nz - 1) if z == nz - 1 else v + 1
        return v + (nz - 1) if z == 0 else v - 1

    def trate(k, v):
        """Trap rate (site part) of the ion on k (if any) into v: orate[k], bond cap applied."""
        w = orate[k]
        if w > ocap:
            s = occ[k]
            w = site_rate(model, nu[s], np.float64(bfac[s, k]), np.float64(bfac[s, v]), bcap)
        return w

    def leaf(v, l, y, z, mask):
        """Target rates (site part) of the classes in ``mask`` (bit c) into site v, written to
        the leaves ``wt[l, LEAF(r, c)]``; 0 if v is occupied."""
        r = y * nz + z
        lf = 24 * (r >> 3) + (r & 7)
        if occ[v] >= 0:
            for c in range(3):
                if mask & (1 << c):
                    wt[l, lf + 8 * c] = 0.0
            return
        if trap:
            # trap rates depend on the origin only: orate = nu_s b_s(origin), 0 if vacant
            # (= site_rate(TRAP, ...); adding 0.0 for a vacant origin changes nothing); trate
            # applies the bond cap
            if mask & 1:
                if l > 0:
                    w = trate(v - m, v)
                elif periodic:
                    w = trate(v + (nx - 1) * m, v)
                elif active >= 0 and frontopen:
                    w = thf * site_rate(model, nu[active], bresf, np.float64(bfac[active, v]), bcap)
                else:
                    w = 0.0
                wt[l, lf] = w
            if mask & 2:
                if l < nx - 1:
                    w = trate(v + m, v)
                elif periodic:
                    w = trate(v - (nx - 1) * m, v)
                elif backbulk and backopen:
                    w = thb * site_rate(model, nu[0], bresb, np.float64(bfac[0, v]), bcap)
                else:
                    w = 0.0
                wt[l, lf + 8] = w
            if mask & 4:
                w = 0.0
                w += trate(v - (ny - 1) * nz if y == ny - 1 else v + nz, v)
                w += trate(v + (ny - 1) * nz if y == 0 else v - nz, v)
                w += trate(v - (nz - 1) if z == nz - 1 else v + 1, v)
                w += trate(v + (nz - 1) if z == 0 else v - 1, v)
                wt[l, lf + 16] = w
            return
        # Metropolis rates (the bond cap needs trap rates: none here)
        if mask & 1:
            if l > 0:
                k = v - m
            elif periodic:
                k = v + (nx - 1) * m
            else:
                k = -1
            w = 0.0
            if k >= 0:
                s = occ[k]
                if s >= 0:
                    w = site_rate(model, nu[s], np.float64(bfac[s, k]), np.float64(bfac[s, v]))
            elif active >= 0 and frontopen:
                w = thf * site_rate(model, nu[active], bresf, np.float64(bfac[active, v]))
            wt[l, lf] = w
        if mask & 2:
            if l < nx - 1:
                k = v + m
            elif periodic:
                k = v - (nx - 1) * m
            else:
                k = -1
            w = 0.0
            if k >= 0:
                s = occ[k]
                if s >= 0:
                    w = site_rate(model, nu[s], np.float64(bfac[s, k]), np.float64(bfac[s, v]))
            elif backbulk and backopen:
                w = thb * site_rate(model, nu[0], bresb, np.float64(bfac[0, v]))
            wt[l, lf + 8] = w
        if mask & 4:
            w = 0.0
            for q in range(4):
                j = lateral(v, y, z, q)
                s = occ[j]
                if s >= 0:
                    w += site_rate(model, nu[s], np.float64(bfac[s, j]), np.float64(bfac[s, v]))
            wt[l, lf + 16] = w

    def exit_rate(i, side):
        """Rate (site part) of the ion on boundary-layer site i leaving to the front (side 0,
        active foreign species only) or back (side 1, natives only) reservoir; 0 if vacant or
        blocked."""
        s = occ[i]
        w = 0.0
        if s >= 0:
            if side == 0:
                if s == active and frontopen:
                    w = (1.0 - thf) * site_rate(model, nu[s], np.float64(bfac[s, i]), bresf, bcap)
            elif s == 0 and backopen:
                w = (1.0 - thb) * site_rate(model, nu[0], np.float64(bfac[0, i]), bresb, bcap)
        return w

    # ------------------------------------------------------------------ selection
    def draw(s0, s1, s2, s3):
        """xoshiro256** (kmc.rng.next_double) on the state held in registers."""
        xr = s1 * np.uint64(5)
        res = ((xr << np.uint64(7)) | (xr >> np.uint64(57))) * np.uint64(9)
        tt = s1 << np.uint64(17)
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= tt
        s3 = (s3 << np.uint64(45)) | (s3 >> np.uint64(19))
        return np.float64(res >> np.uint64(11)) * (1.0 / 9007199254740992.0), s0, s1, s2, s3

    def pick_group(rem):
        """Event group: front exit (0), layer l (l + 1), back exit (nx + 1), beam (nx + 2)."""
        if tree:
            g = 0
            for h in range(Ht, 0, -1):
                b = 8 * (goff_t[h - 1] + g)
                q = 0
                last = 0
                while q < 8:
                    x = top[0, b + q]
                    if x > 0.0:
                        if rem < x:
                            break
                        rem -= x
                        last = q
                    q += 1
                if q == 8:
                    q = last
                    rem = top[0, b + q]
                g = 8 * g + q
            return g, rem
        return wide_pick(top, 0, goff_t, Ht, nx + 3, 0, 1, rem, kind)

    def pick_class(l, rem):
        """Class of the hop into layer l (0 from behind, 1 from ahead, 2 lateral), with the
        remainder in units of that class's leaves."""
        if tree:
            F = wt[l, root]
            B = wt[l, root + 8]
            L = wt[l, root + 16]
        else:
            F = wide_total(wt, l, goff, H, m, 0, 3, kind)
            B = wide_total(wt, l, goff, H, m, 1, 3, kind)
            L = wide_total(wt, l, goff, H, m, 2, 3, kind)
        wf = gf[l] * F
        wb = gb[l + 1] * B
        if rem < wf:
            c = 0
            rem = rem / gf[l]
        elif rem - wf < wb or L <= 0.0:
            c = 1
            rem = (rem - wf) / gb[l + 1]
        else:
            c = 2
            rem = rem - wf - wb
        # rounding guards: never enter an empty class
        if c == 1 and B <= 0.0:
            c = 0 if F > 0.0 else 2
            rem = 0.0
        if c == 0 and F <= 0.0:
            c = 2
            rem = 0.0
        return c, rem

    def pick_target(l, c, rem):
        """Target vacancy r (in-layer index) of class c in layer l."""
        if tree:
            r = 0
            for h in range(H, 0, -1):
                b = 24 * (goff[h - 1] + r) + 8 * c
                q = 0
                last = 0
                while q < 8:
                    x = wt[l, b + q]
                    if x > 0.0:
                        if rem < x:
                            break
                        rem -= x
                        last = q
                    q += 1
                if q == 8:
                    q = last
                    rem = wt[l, b + q]
                r = 8 * r + q
            return r, rem
        return wide_pick(wt, l, goff, H, m, c, 3, rem, kind)

    def pick_origin(v, l, y, z, c, rem):
        """Origin k of the ion that hops into v (-1: a reservoir), its layer, y, z and the
        axis and sign of its move."""
        k = -1
        lk = l
        yk = y
        zk = z
        ax = 0
        sg = 0
        if c == 0:
            if l > 0:
                k = v - m
                lk = l - 1
            elif periodic:
                k = v + (nx - 1) * m
                lk = nx - 1
            sg = 1
        elif c == 1:
            if l < nx - 1:
                k = v + m
                lk = l + 1
            elif periodic:
                k = v - (nx - 1) * m
                lk = 0
            sg = -1
        else:
            # lateral: which occupied neighbour, by the remainder (the leaf's sum order)
            for q in range(4):
                jj = lateral(v, y, z, q)
                s = occ[jj]
                if s >= 0:
                    if trap:
                        w = trate(jj, v)
                    else:
                        w = site_rate(model, nu[s], np.float64(bfac[s, jj]), np.float64(bfac[s, v]))
                    k = jj
                    yy = y
                    zz = z
                    if q == 0:
                        yy = 0 if y == ny - 1 else y + 1
                    elif q == 1:
                        yy = ny - 1 if y == 0 else y - 1
                    elif q == 2:
                        zz = 0 if z == nz - 1 else z + 1
                    else:
                        zz = nz - 1 if z == 0 else z - 1
                    yk = yy
                    zk = zz
                    # the ion moves from the neighbour towards v: opposite to the bond
                    ax = 1 if q < 2 else 2
                    sg = -1 if (q & 1) == 0 else 1
                    if rem < w:
                        break
                    rem -= w
        return k, lk, yk, zk, ax, sg

    # ------------------------------------------------------------------ events
    def hop(k, lk, v, l, c, ax, sg):
        """The ion on site k (layer lk) hops into the vacant site v (layer l)."""
        sp = occ[k]
        occ[k] = -1
        orate[k] = 0.0
        cnt[sp, lk] -= 1
        occ[v] = sp
        orate[v] = nu[sp] * np.float64(bfac[sp, v])
        cnt[sp, l] += 1
        counters[sp, c] += 1        # C_FWD, C_BWD, C_LAT = class 0, 1, 2
        coll[sp, ax] += sg
        if track:
            ion = site_ion[k]
            site_ion[k] = -1
            site_ion[v] = ion
            ion_site[ion] = v
            ion_disp[ion, ax] += sg

    def insert(v, l, c):
        """An ion from the front (class 0, active foreign species) or back (class 1, natives)
        reservoir enters site v of a boundary layer; returns the gap crossed and the change of
        its G."""
        sp = active if c == 0 else 0
        occ[v] = sp
        orate[v] = nu[sp] * np.float64(bfac[sp, v])
        cnt[sp, l] += 1
        if track:
            ion = free_ids[ist[S_NFREE] - 1]
            ist[S_NFREE] -= 1
            site_ion[v] = ion
            ion_sp[ion] = sp
            ion_site[ion] = v
            ion_disp[ion, 0] = 0
            ion_disp[ion, 1] = 0
            ion_disp[ion, 2] = 0
        if c == 0:
            # a surface charge moves into layer 0: G_0 = F0 -= 1, G_g (g >= 1) unchanged
            counters[sp, C_FRONT_IN] += 1
            coll[sp, 0] += 1
            ist[S_F0] -= 1
            return 0, -1
        counters[sp, C_BACK_IN] += 1
        coll[sp, 0] -= 1
        return nx, 1

    def leave(side, rem):
        """The ion on a site of layer 0 (side 0) or nx - 1 (side 1) exits into the front / back
        reservoir; returns the site, its layer and in-layer index, the gap and the change of G."""
        fac = gb[0] if side == 0 else gf[nx]
        r, rem = pick(ex, side, P, m, 0, rem / fac, kind)
        l = 0 if side == 0 else nx - 1
        i = l * m + r
        sp = occ[i]
        occ[i] = -1
        orate[i] = 0.0
        cnt[sp, l] -= 1
        if track:
            ion = site_ion[i]
            site_ion[i] = -1
            ion_site[ion] = -1
            free_ids[ist[S_NFREE]] = ion
            ist[S_NFREE] += 1
            ion_disp[ion, 0] += -1 if side == 0 else 1
        if side == 0:
            # the charge returns to the front surface (F0 += 1): gap 0 only
            counters[sp, C_FRONT_OUT] += 1
            coll[sp, 0] -= 1
            ist[S_F0] += 1
            return i, l, r, 0, 1
        counters[sp, C_BACK_OUT] += 1
        coll[sp, 0] += 1
        return i, l, r, nx, -1

    def accumulate(g, slot):
        """Bring the time integral of G[g] (gint column `slot`) up to the clock."""
        t = clock[0]
        gint[0, slot] += G[g] * (t - gint[1, slot])
        gint[1, slot] = t

    def beam():
        """Beam arrival: one more charge on the front surface shifts every gap by +c."""
        if integrate:
            for q in range(nx + 1):
                accumulate(q, q)
            accumulate(nx + 1, gsum)
        for q in range(nx + 1):
            G[q] += 1
        G[nx + 1] += nx + 1
        ist[S_F0] += 1
        counters[active, C_BEAM] += 1
        fields(E, gf, gb, G, BG, ip, fp)

    # ------------------------------------------------------------------ updates
    def mark(gg, nd):
        """Group gg's weight is stale: queue it once."""
        if not dirty[gg]:
            dirty[gg] = True
            dlist[nd] = gg
            nd += 1
        return nd

    def cross_gap(gap, d, nd):
        """An ion crossed gap `gap` (G changes by d): its field and the two groups next to it
        (all fields under a potentiostat: returns True then)."""
        if integrate:
            accumulate(gap, gap)
            accumulate(nx + 1, gsum)
        G[gap] += d
        G[nx + 1] += d
        if pot:
            return True, nd
        # the expression of ``fields`` for one gap
        E[gap] = fp[F_EBACK] + fp[F_C] * (G[gap] - BG[gap])
        gf[gap] = np.exp(fp[F_HBQA] * E[gap])
        gb[gap] = np.exp(-fp[F_HBQA] * E[gap])
        nd = mark(gap, nd)              # its backward factor
        return False, mark(gap + 1, nd)  # its forward factor

    def refresh_exit(i, l, y, z, nd):
        """Exit leaves of site i if it lies in a boundary layer, and their binary walk."""
        for side in range(2):
            if l != (0 if side == 0 else nx - 1):
                continue
            kn = P + y * nz + z
            ex[side, kn, 0] = exit_rate(i, side)
            if tree:
                kn >>= 1
                while kn >= 1:
                    ex[side, kn, 0] = ex[side, 2 * kn, 0] + ex[side, 2 * kn + 1, 0]
                    kn >>= 1
            nd = mark(0 if side == 0 else nx + 1, nd)
        return nd

    def queue(i, l, y, z, skip, ne):
        """Queue the changed site i (all classes) and its vacant neighbours (the class of the
        bond to i) other than `skip`."""
        ent[ne, 0] = i
        ent[ne, 1] = l
        ent[ne, 2] = y
        ent[ne, 3] = z
        ent[ne, 4] = 7
        ne += 1
        for dd in range(6):
            lk = l
            yk = y
            zk = z
            if dd == 0:     # i is the -x neighbour of the +x site: its class 0
                mask = 1
                if l < nx - 1:
                    lk = l + 1
                elif periodic:
                    lk = 0
                else:
                    continue
            elif dd == 1:   # i is the +x neighbour of the -x site: its class 1
                mask = 2
                if l > 0:
                    lk = l - 1
                elif periodic:
                    lk = nx - 1
                else:
                    continue
            else:
                mask = 4
                if dd == 2:
                    yk = 0 if y == ny - 1 else y + 1
                elif dd == 3:
                    yk = ny - 1 if y == 0 else y - 1
                elif dd == 4:
                    zk = 0 if z == nz - 1 else z + 1
                else:
                    zk = nz - 1 if z == 0 else z - 1
            kk = i + (lk - l) * m + (yk - y) * nz + (zk - z)
            if kk == skip or occ[kk] >= 0:
                continue
            ent[ne, 0] = kk
            ent[ne, 1] = lk
            ent[ne, 2] = yk
            ent[ne, 3] = zk
            ent[ne, 4] = mask
            ne += 1
        return ne

    def walk_layer(l, j, mask, ja):
        """Recompute the ancestors (classes in mask) of leaf j of layer l: to the root, or with
        ja >= 0 to just below the lowest common ancestor with leaf ja (selectors' group_sum,
        same operations and order)."""
        for h in range(H):
            gq = j >> 3
            ja >>= 3
            if gq == ja:
                break
            b = 24 * (goff[h] + gq)
            dst = 24 * (goff[h + 1] + (gq >> 3)) + (gq & 7)
            for c in range(3):
                if mask & (1 << c):
                    bc = b + 8 * c
                    wt[l, dst + 8 * c] = (
                        ((wt[l, bc] + wt[l, bc + 1]) + (wt[l, bc + 2] + wt[l, bc + 3]))
                        + ((wt[l, bc + 4] + wt[l, bc + 5]) + (wt[l, bc + 6] + wt[l, bc + 7])))
            j = gq

    def walk_top(j, ja):
        """The same walk in the top tree (one class)."""
        for h in range(Ht):
            gq = j >> 3
            ja >>= 3
            if gq == ja:
                break
            b = 8 * (goff_t[h] + gq)
            top[0, 8 * goff_t[h + 1] + gq] = (
                ((top[0, b] + top[0, b + 1]) + (top[0, b + 2] + top[0, b + 3]))
                + ((top[0, b + 4] + top[0, b + 5]) + (top[0, b + 6] + top[0, b + 7])))
            j = gq

    def refresh_layers(ne, nd):
        """Leaves of the queued entries, then the batched walk: the first entry of a layer is its
        anchor, the others stop below their lowest common ancestor with it, and the anchor walks
        to the root with the union of the classes (each stale node recomputed once, after its
        children)."""
        for e in range(ne):
            ent[e, 5] = ent[e, 2] * nz + ent[e, 3]
            leaf(ent[e, 0], ent[e, 1], ent[e, 2], ent[e, 3], ent[e, 4])
        for e in range(ne):
            l = ent[e, 1]
            an = -1
            for q in range(e):
                if ent[q, 1] == l and ent[q, 0] < 0:
                    an = q
                    break
            ent[e, 0] = an
            if an >= 0:
                ent[an, 4] |= ent[e, 4]
                if tree:
                    walk_layer(l, ent[e, 5], ent[e, 4], ent[an, 5])
        for e in range(ne):
            if ent[e, 0] < 0:
                if tree:
                    walk_layer(ent[e, 1], ent[e, 5], ent[e, 4], -1)
                nd = mark(ent[e, 1] + 1, nd)
        return nd

    def refresh_top(nd, full):
        """Group weights of the dirty groups (or all of them) and the top tree."""
        if full:
            for q in range(nd):
                dirty[dlist[q]] = False
            rebuild_top(wt, goff, ex, top, goff_t, gf, gb, ip, fp)
        elif tree:
            for q in range(nd):
                gg = dlist[q]
                dirty[gg] = False
                if gg == 0:
                    w = gb[0] * ex[0, 1, 0]
                elif gg == nx + 1:
                    w = gf[nx] * ex[1, 1, 0]
                elif gg == nx + 2:
                    w = fp[F_RBEAM]
                else:
                    lg = gg - 1
                    w = (gf[lg] * wt[lg, root] + gb[lg + 1] * wt[lg, root + 8]
                         + wt[lg, root + 16])
                top[0, gg] = w
            if nd > 0:
                for q in range(1, nd):
                    walk_top(dlist[q], dlist[0])
                walk_top(dlist[0], -1)
        else:
            for q in range(nd):
                gg = dlist[q]
                dirty[gg] = False
                top[0, gg] = _group_weight(gg, wt, goff, ex, gf, gb, ip, fp)

    def field_average(k):
        """Fields averaged over [previous output time, output time k] from the integrals of G
        (the map G -> E of ``fields`` is linear); a snapshot without electrostatics or at an
        interval of length 0. Restarts the integrals."""
        tk = out_times[k]
        t0 = out_times[k - 1] if k > 0 else 0.0
        ea = rec.r_Eavg[k]
        if not integrate or tk <= t0:
            ea[: nx + 1] = E
        else:
            span = tk - t0
            c = fp[F_C]
            e0 = fp[F_EBACK]
            if ip[I_DRIVE] == 2:
                sbg = 0.0
                for g in range(nx + 1):
                    sbg += BG[g]
                gbar = (gint[0, gsum] + G[nx + 1] * (tk - gint[1, gsum])) / span
                e0 = (fp[F_U] / fp[F_A] - c * (gbar - sbg)) / (nx + 1)
            for g in range(nx + 1):
                ea[g] = e0 + c * ((gint[0, g] + G[g] * (tk - gint[1, g])) / span - BG[g])
        ea[nx + 1:] = ea[nx]
        for g in range(gint.shape[1]):
            gint[0, g] = 0.0
            gint[1, g] = tk

    def record_until(t, inclusive):
        """Records of the output times before t (up to t with `inclusive`)."""
        while ist[S_OUTK] < n_out and (out_times[ist[S_OUTK]] <= t if inclusive
                                        else out_times[ist[S_OUTK]] < t):
            field_average(ist[S_OUTK])
            _record(ist[S_OUTK], occ, ebin, cnt, E, counters, coll, ion_disp, ist, ip,
                    rec.r_cnt, rec.r_E, rec.r_counters, rec.r_coll, rec.r_hist, rec.r_ion,
                    rec.r_nev, rec.r_nxa)
            ist[S_OUTK] += 1

    # ------------------------------------------------------------------ rebuild
    if mode == MODE_REBUILD:
        for i in range(occ.shape[0]):
            s = occ[i]
            orate[i] = nu[s] * np.float64(bfac[s, i]) if s >= 0 else 0.0
        wt[:] = 0.0
        ex[:] = 0.0
        for l in range(nx):
            for r in range(m):
                y = r // nz
                leaf(l * m + r, l, y, r - y * nz, 7)
            for c in range(3):
                wide_init(wt, l, goff, H, c, 3, kind)
        if not periodic:
            for r in range(m):
                ex[0, P + r, 0] = exit_rate(r, 0)
                ex[1, P + r, 0] = exit_rate((nx - 1) * m + r, 1)
            if tree:
                for s in range(2):
                    for k in range(P - 1, 0, -1):
                        ex[s, k, 0] = ex[s, 2 * k, 0] + ex[s, 2 * k + 1, 0]
        fields(E, gf, gb, G, BG, ip, fp)
        rebuild_top(wt, goff, ex, top, goff_t, gf, gb, ip, fp)
        return 0

    # ------------------------------------------------------------------ events
    s0 = rng[0]     # xoshiro256** state in registers, written back at the single exit below
    s1 = rng[1]
    s2 = rng[2]
    s3 = rng[3]
    status = 0
    while ist[S_NEV] < ev_stop:
        tot = top[0, troot] if tree else wide_total(top, 0, goff_t, Ht, nx + 3, 0, 1, kind)
        t = clock[0]
        if not np.isfinite(tot):
            # overflowing gap factors (field runaway): stop before drawing, the engine raises
            status = 3
            break
        if tot <= 0.0:
            record_until(t_stop, True)
            clock[0] = t_stop
            status = 2
            break
        u1, s0, s1, s2, s3 = draw(s0, s1, s2, s3)
        u2, s0, s1, s2, s3 = draw(s0, s1, s2, s3)
        tn = t - np.log(1.0 - u2) / tot
        if not np.isfinite(tn):
            status = 3
            break
        if tn >= t_stop:
            record_until(t_stop, True)
            clock[0] = t_stop
            status = 1
            break
        record_until(tn, False)
        clock[0] = tn
        # ---- the event: group -> class -> target site -> origin
        g, rem = pick_group(u1 * tot)
        gap = -1        # gap whose field changes (-1: none), d: its change of G
        d = 0
        full = False
        # sites whose occupancy changed (-1: none): ua (now vacant or the only one), ub
        ua = ula = uya = uza = ub = ulb = uyb = uzb = -1
        if nlog:
            jl = ist[S_NEV] % nlog
            evlog[jl, 0] = -1
            evlog[jl, 1] = -1
            evlog[jl, 2] = -1
        if g == nx + 2:
            beam()
            full = True
        elif g == 0 or g == nx + 1:
            ua, ula, r, gap, d = leave(0 if g == 0 else 1, rem)
            uya = r // nz
            uza = r - uya * nz
            if nlog:
                evlog[ist[S_NEV] % nlog, 0] = ua
        else:
            l = g - 1
            c, rem = pick_class(l, rem)
            r, rem = pick_target(l, c, rem)
            v = l * m + r
            y = r // nz
            z = r - y * nz
            k, lk, yk, zk, ax, sg = pick_origin(v, l, y, z, c, rem)
            if nlog:
                jl = ist[S_NEV] % nlog
                evlog[jl, 0] = k
                evlog[jl, 1] = v
                evlog[jl, 2] = c
            if k >= 0:
                hop(k, lk, v, l, c, ax, sg)
                if c == 0 and l >= grow and occ[v] > 0:
                    status = 4      # after this event: the engine appends layers
                if c < 2 and not periodic:
                    gap = l if c == 0 else l + 1
                    d = -1 if c == 0 else 1
                ua, ula, uya, uza = k, lk, yk, zk
                ub, ulb, uyb, uzb = v, l, y, z
            else:
                gap, d = insert(v, l, c)
                ua, ula, uya, uza = v, l, y, z
        # ---- declared update radius
        nd = 0
        if gap >= 0:
            full_gap, nd = cross_gap(gap, d, nd)
            full = full or full_gap
        if ua >= 0 and not periodic:
            nd = refresh_exit(ua, ula, uya, uza, nd)
            if ub >= 0:
                nd = refresh_exit(ub, ulb, uyb, uzb, nd)
        if ua >= 0:
            ne = queue(ua, ula, uya, uza, ub, 0)
            if ub >= 0:
                ne = queue(ub, ulb, uyb, uzb, ua, ne)
            nd = refresh_layers(ne, nd)
        if pot and full:
            fields(E, gf, gb, G, BG, ip, fp)
        refresh_top(nd, full)
        ist[S_NEV] += 1
        if status == 4:
            break
    rng[0] = s0
    rng[1] = s1
    rng[2] = s2
    rng[3] = s3
    return status


def advance(lat, trees, ions, field, tally, clk, setup, rec, ev_stop):
    """Run events (:func:`run` in ``MODE_ADVANCE``); returns its status."""
    return run(MODE_ADVANCE, lat, trees, ions, field, tally, clk, setup, rec, ev_stop)


def rebuild(lat, trees, ions, field, tally, clk, setup, rec):
    """Full recompute of every leaf, tree, field and group weight from the state (O(N))."""
    run(MODE_REBUILD, lat, trees, ions, field, tally, clk, setup, rec, 0)
