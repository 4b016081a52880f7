"""The hot loop (numba): arrays and scalars only, every option resolved to integers beforehand.

Event structure (PHYSICS.md §5, STYLE.md "events vs selection"):
* per layer ``l`` an interleaved 3-class blocked sum tree ``trees[l, node, c]`` (selectors.py:
  ``ip[I_BS]`` sites per leaf) over the site rates ``sr[l, r, c]`` (r = y nz + z) = *site part* of
  the rate summed over vacant targets of class ``c``:
  0 = forward (+x, crosses gap l+1), 1 = backward (-x, crosses gap l), 2 = lateral (4 bonds);
* two insertion trees ``ins[0]`` (front reservoir -> vacant site of layer 0, gap 0) and
  ``ins[1]`` (back bulk reservoir -> vacant site of layer nx-1, gap nx);
* a top tree over ``nx + 3`` groups [front insertion, layer 0 .. nx-1, back insertion, beam
  arrival] with weights ``gf[l+1] F_l + gb[l] B_l + L_l`` (gap factors times class roots); the
  beam group (galvanostatic drive) has the constant weight ``fp[F_RBEAM]`` and adds one charge
  to the front surface charge ``F0`` (``ist[S_F0]``, electrostatics.py).
Order of events (shared by the tree and the linear reference): group, class, site, direction.

Declared update radius of a hop i -> j: leaves of i and j (all classes), of the neighbours of i
and j (the class pointing at i or j), insertion leaves of i and j; top weights of the layers
holding those sites and of the groups next to the gap whose field changed (groups g, g + 1 for
gap g); all groups after a uniform shift (potentiostatic hop, beam arrival).
"""
import numpy as np
from numba import njit

from .rates import TRAP, site_rate
from .rng import next_double
from .selectors import TREE, block_sum, pick, pick_blocked, total, walk_up

# ipar slots
I_MODEL, I_SEL, I_PERIODIC, I_BACKKIND, I_DRIVE, I_ACTIVE, I_FRONTOPEN, I_NX, I_NY, I_NZ = range(10)
# I_P: leaves of the insertion trees (= ny nz); I_PB: blocks (leaves) of a layer tree
# I_BS: sites per block (BLOCK if ny nz is a multiple of it, else 1 = the unblocked tree's order)
I_P, I_PT, I_HIST, I_IONS, I_LPS, I_NBINS, I_BACKOPEN, I_FIELD, I_PB, I_BS = range(10, 20)
N_IPAR = 20
# fpar slots
# F_EBACK: the external uniform field E_ext (electrostatics off; periodic); F_RBEAM: beam arrivals/s
F_BETA, F_A, F_C, F_EBACK, F_U, F_THF, F_THB, F_BRESF, F_BRESB, F_HBQA, F_TSTOP, F_RBEAM = range(12)
N_FPAR = 12
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


@njit(cache=True, inline="always")
def _nbrs(i, l, y, z, ip):
    """Targets of site i = (l ny + y) nz + z: forward, backward (-1 where a non-periodic
    boundary is crossed) and the lateral ones in the order +y, -y, +z, -z (the lateral pick)."""
    nx = ip[I_NX]
    ny = ip[I_NY]
    nz = ip[I_NZ]
    m = ny * nz
    if l < nx - 1:
        jf = i + m
    elif ip[I_PERIODIC]:
        jf = i - (nx - 1) * m
    else:
        jf = -1
    if l > 0:
        jb = i - m
    elif ip[I_PERIODIC]:
        jb = i + (nx - 1) * m
    else:
        jb = -1
    j0 = i - (ny - 1) * nz if y == ny - 1 else i + nz
    j1 = i + (ny - 1) * nz if y == 0 else i - nz
    j2 = i - (nz - 1) if z == nz - 1 else i + 1
    j3 = i + (nz - 1) if z == 0 else i - 1
    return jf, jb, j0, j1, j2, j3


@njit(cache=True, inline="always")
def _leaf3(i, l, y, z, occ, bfac, nu, ip, fp, sr, r, mask):
    """Site part of the summed rate of the classes in ``mask`` (bit c: 0 forward, 1 backward,
    2 lateral) out of site i = (l ny + y) nz + z (0 if vacant), written to ``sr[l, r, c]``.

    One pass over the neighbours for all classes. Trap model (rate depends on the origin only):
    every class is the site factor ``nu_s b_s(i)`` times its number of vacant targets (0/1 from
    ``occ < 0``, no per-target rate or branch). Metropolis: per-target ``site_rate``. Full
    rebuild and incremental update both go through here, so they agree bitwise.
    """
    sp = occ[i]
    if sp < 0:
        for c in range(3):
            if mask & (1 << c):
                sr[l, r, c] = 0.0
        return
    jf, jb, j0, j1, j2, j3 = _nbrs(i, l, y, z, ip)
    nus = nu[sp]
    bi = np.float64(bfac[sp, i])
    if ip[I_MODEL] == TRAP:
        sf = nus * bi
        if mask & 1:
            if jf >= 0:
                sr[l, r, 0] = sf * np.float64(occ[jf] < 0)
            elif sp == 0 and ip[I_BACKOPEN]:
                sr[l, r, 0] = (1.0 - fp[F_THB]) * sf
            else:
                sr[l, r, 0] = 0.0
        if mask & 2:
            if jb >= 0:
                sr[l, r, 1] = sf * np.float64(occ[jb] < 0)
            elif sp == ip[I_ACTIVE] and ip[I_FRONTOPEN]:
                sr[l, r, 1] = (1.0 - fp[F_THF]) * sf
            else:
                sr[l, r, 1] = 0.0
        if mask & 4:
            nv = (np.int64(occ[j0] < 0) + np.int64(occ[j1] < 0) + np.int64(occ[j2] < 0)
                  + np.int64(occ[j3] < 0))
            sr[l, r, 2] = sf * np.float64(nv)
        return
    model = ip[I_MODEL]
    if mask & 1:
        w = 0.0
        if jf >= 0:
            if occ[jf] < 0:
                w = site_rate(model, nus, bi, np.float64(bfac[sp, jf]))
        elif sp == 0 and ip[I_BACKOPEN]:
            w = (1.0 - fp[F_THB]) * site_rate(model, nus, bi, fp[F_BRESB])
        sr[l, r, 0] = w
    if mask & 2:
        w = 0.0
        if jb >= 0:
            if occ[jb] < 0:
                w = site_rate(model, nus, bi, np.float64(bfac[sp, jb]))
        elif sp == ip[I_ACTIVE] and ip[I_FRONTOPEN]:
            w = (1.0 - fp[F_THF]) * site_rate(model, nus, bi, fp[F_BRESF])
        sr[l, r, 1] = w
    if mask & 4:
        s = 0.0
        if occ[j0] < 0:
            s += site_rate(model, nus, bi, np.float64(bfac[sp, j0]))
        if occ[j1] < 0:
            s += site_rate(model, nus, bi, np.float64(bfac[sp, j1]))
        if occ[j2] < 0:
            s += site_rate(model, nus, bi, np.float64(bfac[sp, j2]))
        if occ[j3] < 0:
            s += site_rate(model, nus, bi, np.float64(bfac[sp, j3]))
        sr[l, r, 2] = s


@njit(cache=True)
def _ins_leaf(j, side, occ, bfac, nu, ip, fp):
    """Rate (site part) of inserting into vacant site j from the front (side 0) or back (1)."""
    if occ[j] >= 0:
        return 0.0
    if side == 0:
        k = ip[I_ACTIVE]
        if k < 0 or ip[I_FRONTOPEN] == 0:
            return 0.0
        return fp[F_THF] * site_rate(ip[I_MODEL], nu[k], fp[F_BRESF], np.float64(bfac[k, j]))
    if ip[I_BACKKIND] != BACK_BULK or ip[I_BACKOPEN] == 0:
        return 0.0
    return fp[F_THB] * site_rate(ip[I_MODEL], nu[0], fp[F_BRESB], np.float64(bfac[0, j]))


@njit(cache=True, inline="always")
def _mark(g, dirty, dlist, nd):
    if not dirty[g]:
        dirty[g] = True
        dlist[nd] = g
        return nd + 1
    return nd


@njit(cache=True)
def _refresh_ins(i, l, r, occ, bfac, nu, ip, fp, ins, dirty, dlist, nd):
    """Insertion leaves of site i (layer l, offset r) if it lies in a boundary layer of an open
    lattice."""
    if ip[I_PERIODIC]:
        return nd
    nx = ip[I_NX]
    P = ip[I_P]
    if l == 0:
        ins[0, P + r, 0] = _ins_leaf(i, 0, occ, bfac, nu, ip, fp)
        if ip[I_SEL] == TREE:
            walk_up(ins, 0, P, r, 0)
        nd = _mark(0, dirty, dlist, nd)
    if l == nx - 1:
        ins[1, P + r, 0] = _ins_leaf(i, 1, occ, bfac, nu, ip, fp)
        if ip[I_SEL] == TREE:
            walk_up(ins, 1, P, r, 0)
        nd = _mark(nx + 1, dirty, dlist, nd)
    return nd


@njit(cache=True, inline="always")
def _group_weight(g, trees, ins, gf, gb, ip, fp):
    nx = ip[I_NX]
    P = ip[I_P]
    PB = ip[I_PB]
    m = ip[I_NY] * ip[I_NZ]
    kind = ip[I_SEL]
    if g == 0:
        return gf[0] * total(ins, 0, P, m, 0, kind)
    if g == nx + 1:
        return gb[nx] * total(ins, 1, P, m, 0, kind)
    if g == nx + 2:
        return fp[F_RBEAM]
    l = g - 1
    return (gf[l + 1] * total(trees, l, PB, PB, 0, kind) + gb[l] * total(trees, l, PB, PB, 1, kind)
            + total(trees, l, PB, PB, 2, kind))


@njit(cache=True)
def rebuild_top(trees, ins, top, gf, gb, ip, fp):
    """All group weights and the top tree from scratch. O(nx)."""
    nx = ip[I_NX]
    Pt = ip[I_PT]
    for k in range(2 * Pt):
        top[0, k, 0] = 0.0
    for g in range(nx + 3):
        top[0, Pt + g, 0] = _group_weight(g, trees, ins, gf, gb, ip, fp)
    if ip[I_SEL] == TREE:
        for k in range(Pt - 1, 0, -1):
            top[0, k, 0] = top[0, 2 * k, 0] + top[0, 2 * k + 1, 0]


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
def rebuild(occ, bfac, nu, trees, sr, ins, top, E, gf, gb, G, BG, ip, fp):
    """Full recompute of every leaf, tree, field and group weight from the state."""
    nx = ip[I_NX]
    m = ip[I_NY] * ip[I_NZ]
    P = ip[I_P]
    PB = ip[I_PB]
    trees[:] = 0.0
    sr[:] = 0.0
    ins[:] = 0.0
    nz = ip[I_NZ]
    for l in range(nx):
        for r in range(m):
            i = l * m + r
            y = r // nz
            _leaf3(i, l, y, r - y * nz, occ, bfac, nu, ip, fp, sr, r, 7)
        for b in range(PB):
            for c in range(3):
                trees[l, PB + b, c] = block_sum(sr, l, b, c, ip[I_BS])
        if ip[I_SEL] == TREE:
            for k in range(PB - 1, 0, -1):
                for c in range(3):
                    trees[l, k, c] = trees[l, 2 * k, c] + trees[l, 2 * k + 1, c]
    if not ip[I_PERIODIC]:
        for r in range(m):
            ins[0, P + r, 0] = _ins_leaf(r, 0, occ, bfac, nu, ip, fp)
            ins[1, P + r, 0] = _ins_leaf((nx - 1) * m + r, 1, occ, bfac, nu, ip, fp)
        if ip[I_SEL] == TREE:
            for s in range(2):
                for k in range(P - 1, 0, -1):
                    ins[s, k, 0] = ins[s, 2 * k, 0] + ins[s, 2 * k + 1, 0]
    fields(E, gf, gb, G, BG, ip, fp)
    rebuild_top(trees, ins, top, gf, gb, ip, fp)


@njit(cache=True)
def _record(k, occ, ebin, cnt, E, counters, coll, ion_disp, ist, ip,
            r_cnt, r_E, r_counters, r_coll, r_hist, r_ion, r_nev):
    r_cnt[k] = cnt
    r_E[k] = E
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


@njit(cache=True)
def advance(occ, site_ion, bfac, nu, ebin, trees, sr, ins, top, dirty, dlist,
            ion_sp, ion_site, ion_disp, free_ids, G, BG, E, gf, gb, cnt, coll, counters,
            rng, clock, ist, ip, fp, out_times,
            r_cnt, r_E, r_counters, r_coll, r_hist, r_ion, r_nev, ev_stop):
    """Run events until ``ist[S_NEV] == ev_stop`` (return 0), the phase end ``fp[F_TSTOP]``
    (return 1), until no event is possible (time jumps to the phase end, return 2) or until the
    total rate or the clock is not finite (return 3, state left as before that event).

    Returning never discards random numbers except at a phase end, which every run shares, so
    chunking does not change the trajectory (exact resume).
    """
    nx = ip[I_NX]
    ny = ip[I_NY]
    nz = ip[I_NZ]
    m = ny * nz
    P = ip[I_P]
    PB = ip[I_PB]
    Pt = ip[I_PT]
    kind = ip[I_SEL]
    periodic = ip[I_PERIODIC]
    pot = ip[I_DRIVE] == 2 and ip[I_FIELD] == 1
    t_stop = fp[F_TSTOP]
    n_out = out_times.shape[0]
    # queue of changed leaves of one event (<= 2 sites x (1 + 6 neighbours))
    ent = np.zeros((16, 6), dtype=np.int64)
    while ist[S_NEV] < ev_stop:
        tot = total(top, 0, Pt, nx + 3, 0, kind)
        t = clock[0]
        if not np.isfinite(tot):
            # overflowing gap factors (field runaway): stop before drawing, the engine raises
            return 3
        if tot <= 0.0:
            while ist[S_OUTK] < n_out and out_times[ist[S_OUTK]] <= t_stop:
                _record(ist[S_OUTK], occ, ebin, cnt, E, counters, coll, ion_disp, ist, ip,
                        r_cnt, r_E, r_counters, r_coll, r_hist, r_ion, r_nev)
                ist[S_OUTK] += 1
            clock[0] = t_stop
            return 2
        u1 = next_double(rng)
        u2 = next_double(rng)
        tn = t - np.log(1.0 - u2) / tot
        if not np.isfinite(tn):
            return 3
        if tn >= t_stop:
            while ist[S_OUTK] < n_out and out_times[ist[S_OUTK]] <= t_stop:
                _record(ist[S_OUTK], occ, ebin, cnt, E, counters, coll, ion_disp, ist, ip,
                        r_cnt, r_E, r_counters, r_coll, r_hist, r_ion, r_nev)
                ist[S_OUTK] += 1
            clock[0] = t_stop
            return 1
        while ist[S_OUTK] < n_out and out_times[ist[S_OUTK]] < tn:
            _record(ist[S_OUTK], occ, ebin, cnt, E, counters, coll, ion_disp, ist, ip,
                    r_cnt, r_E, r_counters, r_coll, r_hist, r_ion, r_nev)
            ist[S_OUTK] += 1
        clock[0] = tn

        # ---- selection: group -> class -> site -> direction
        g, rem = pick(top, 0, Pt, nx + 3, 0, u1 * tot, kind)
        nd = 0
        full = False
        do_upd = False
        ua = ula = uya = uza = ub = ulb = uyb = uzb = -1
        if g == nx + 2:
            # beam arrival: one more charge on the front surface shifts every gap by +c
            for q in range(nx + 1):
                G[q] += 1
            G[nx + 1] += nx + 1
            ist[S_F0] += 1
            counters[ip[I_ACTIVE], C_BEAM] += 1
            fields(E, gf, gb, G, BG, ip, fp)
            full = True
        elif g == 0 or g == nx + 1:
            side = 0 if g == 0 else 1
            fac = gf[0] if side == 0 else gb[nx]
            r, rem = pick(ins, side, P, m, 0, rem / fac, kind)
            if side == 0:
                sp = ip[I_ACTIVE]
                j = r
                lj = 0
            else:
                sp = 0
                j = (nx - 1) * m + r
                lj = nx - 1
            yj = r // nz
            zj = r - yj * nz
            ion = free_ids[ist[S_NFREE] - 1]
            ist[S_NFREE] -= 1
            occ[j] = sp
            site_ion[j] = ion
            ion_sp[ion] = sp
            ion_site[ion] = j
            ion_disp[ion, 0] = 0
            ion_disp[ion, 1] = 0
            ion_disp[ion, 2] = 0
            cnt[sp, lj] += 1
            # only the gap crossed changes: front insertion moves a surface charge into layer 0
            # (G_0 = F0 -= 1, G_g unchanged for g >= 1), back insertion adds to G_nx
            gap = 0 if side == 0 else nx
            d = -1 if side == 0 else 1
            G[gap] += d
            G[nx + 1] += d
            if side == 0:
                counters[sp, C_FRONT_IN] += 1
                coll[sp, 0] += 1
                ist[S_F0] -= 1
            else:
                counters[sp, C_BACK_IN] += 1
                coll[sp, 0] -= 1
            if pot:
                full = True
            else:
                fields_one(gap, E, gf, gb, G, BG, fp)
                nd = _mark(gap, dirty, dlist, nd)
                nd = _mark(gap + 1, dirty, dlist, nd)
            nd = _refresh_ins(j, lj, r, occ, bfac, nu, ip, fp, ins, dirty, dlist, nd)
            ua, ula, uya, uza, ub, ulb, uyb, uzb = j, lj, yj, zj, -1, 0, 0, 0
            do_upd = True
        else:
            l = g - 1
            if kind == TREE:
                F = trees[l, 1, 0]
                B = trees[l, 1, 1]
                L = trees[l, 1, 2]
            else:
                F = total(trees, l, PB, PB, 0, kind)
                B = total(trees, l, PB, PB, 1, kind)
                L = total(trees, l, PB, PB, 2, kind)
            wf = gf[l + 1] * F
            wb = gb[l] * B
            if rem < wf:
                c = 0
                rem = rem / gf[l + 1]
            elif rem - wf < wb or L <= 0.0:
                c = 1
                rem = (rem - wf) / gb[l]
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
            r, rem = pick_blocked(trees, sr, l, PB, c, rem, kind, ip[I_BS])
            i = l * m + r
            y = r // nz
            z = r - y * nz
            sp = occ[i]
            ion = site_ion[i]
            j = -1
            lj = l
            yj = y
            zj = z
            if c == 0:
                if l < nx - 1:
                    j = i + m
                    lj = l + 1
                elif periodic:
                    j = i - (nx - 1) * m
                    lj = 0
                counters[sp, C_FWD] += 1
                coll[sp, 0] += 1
                ion_disp[ion, 0] += 1
            elif c == 1:
                if l > 0:
                    j = i - m
                    lj = l - 1
                elif periodic:
                    j = i + (nx - 1) * m
                    lj = nx - 1
                counters[sp, C_BWD] += 1
                coll[sp, 0] -= 1
                ion_disp[ion, 0] -= 1
            else:
                # lateral: which of the vacant neighbours, by the remainder
                bi = np.float64(bfac[sp, i])
                kk = -1
                for k in range(4):
                    yy = y
                    zz = z
                    if k == 0:
                        yy = 0 if y == ny - 1 else y + 1
                    elif k == 1:
                        yy = ny - 1 if y == 0 else y - 1
                    elif k == 2:
                        zz = 0 if z == nz - 1 else z + 1
                    else:
                        zz = nz - 1 if z == 0 else z - 1
                    jj = i + (yy - y) * nz + (zz - z)
                    if occ[jj] < 0:
                        w = site_rate(ip[I_MODEL], nu[sp], bi, np.float64(bfac[sp, jj]))
                        kk = k
                        j = jj
                        yj = yy
                        zj = zz
                        if rem < w:
                            break
                        rem -= w
                counters[sp, C_LAT] += 1
                ax = 1 if kk < 2 else 2
                sg = 1 if (kk & 1) == 0 else -1
                coll[sp, ax] += sg
                ion_disp[ion, ax] += sg
            occ[i] = -1
            site_ion[i] = -1
            cnt[sp, l] -= 1
            if j >= 0:
                occ[j] = sp
                site_ion[j] = ion
                ion_site[ion] = j
                cnt[sp, lj] += 1
                if c < 2 and not periodic:
                    gap = l + 1 if c == 0 else l
                    d = -1 if c == 0 else 1
                    G[gap] += d
                    G[nx + 1] += d
                    if pot:
                        full = True
                    else:
                        fields_one(gap, E, gf, gb, G, BG, fp)
                        nd = _mark(gap, dirty, dlist, nd)       # layer gap-1 (its fwd)
                        nd = _mark(gap + 1, dirty, dlist, nd)   # layer gap (its bwd)
            else:
                # left through a boundary: back exit lowers G_nx; front exit returns the charge
                # to the surface (F0 += 1, G_g unchanged for g >= 1): one gap either way
                ion_site[ion] = -1
                free_ids[ist[S_NFREE]] = ion
                ist[S_NFREE] += 1
                if c == 0:
                    counters[sp, C_FWD] -= 1
                    counters[sp, C_BACK_OUT] += 1
                    gap = nx
                    d = -1
                else:
                    counters[sp, C_BWD] -= 1
                    counters[sp, C_FRONT_OUT] += 1
                    ist[S_F0] += 1
                    gap = 0
                    d = 1
                G[gap] += d
                G[nx + 1] += d
                if pot:
                    full = True
                else:
                    fields_one(gap, E, gf, gb, G, BG, fp)
                    nd = _mark(gap, dirty, dlist, nd)
                    nd = _mark(gap + 1, dirty, dlist, nd)
            if l == 0 or l == nx - 1:
                nd = _refresh_ins(i, l, r, occ, bfac, nu, ip, fp, ins, dirty, dlist, nd)
            if j >= 0 and (lj == 0 or lj == nx - 1):
                nd = _refresh_ins(j, lj, yj * nz + zj, occ, bfac, nu, ip, fp, ins, dirty, dlist, nd)
            ua, ula, uya, uza, ub, ulb, uyb, uzb = i, l, y, z, j, lj, yj, zj
            do_upd = True
        if do_upd:
            # Layer-tree leaves changed by the event (sites ua, ub; -1: none), written out here,
            # not called: a call (inline or not) costs atomic refcounts of its array arguments.
            # Queued in ``ent`` (int64, (16, 6): site, layer, y, z, class mask, node): the
            # centres with all classes, their occupied neighbours with the class of the bond to
            # the centre. Then the batched walk: the first queued leaf of a layer is its anchor,
            # the others stop below their lowest common ancestor with it, and the anchor walks
            # to the root with the union of the classes (each stale node recomputed once per
            # class, after its children).
            nx = ip[I_NX]
            ny = ip[I_NY]
            nz = ip[I_NZ]
            m = ny * nz
            PB = ip[I_PB]
            bs = ip[I_BS]
            periodic = ip[I_PERIODIC]
            trap = ip[I_MODEL] == TRAP
            backopen = ip[I_BACKOPEN]
            frontopen = ip[I_FRONTOPEN]
            active = ip[I_ACTIVE]
            thb = fp[F_THB]
            thf = fp[F_THF]
            ne = 0
            for q in range(2):
                if q == 0:
                    i, l, y, z, skip = ua, ula, uya, uza, ub
                else:
                    i, l, y, z, skip = ub, ulb, uyb, uzb, ua
                if i < 0:
                    continue
                ent[ne, 0] = i
                ent[ne, 1] = l
                ent[ne, 2] = y
                ent[ne, 3] = z
                ent[ne, 4] = 7
                ne += 1
                for d in range(6):
                    lk = l
                    yk = y
                    zk = z
                    if d == 0:      # +x neighbour hops backward to i
                        mask = 2
                        if l < nx - 1:
                            lk = l + 1
                        elif periodic:
                            lk = 0
                        else:
                            continue
                    elif d == 1:    # -x neighbour hops forward to i
                        mask = 1
                        if l > 0:
                            lk = l - 1
                        elif periodic:
                            lk = nx - 1
                        else:
                            continue
                    else:
                        mask = 4
                        if d == 2:
                            yk = 0 if y == ny - 1 else y + 1
                        elif d == 3:
                            yk = ny - 1 if y == 0 else y - 1
                        elif d == 4:
                            zk = 0 if z == nz - 1 else z + 1
                        else:
                            zk = nz - 1 if z == 0 else z - 1
                    k = i + (lk - l) * m + (yk - y) * nz + (zk - z)
                    if k == skip or occ[k] < 0:
                        continue
                    ent[ne, 0] = k
                    ent[ne, 1] = lk
                    ent[ne, 2] = yk
                    ent[ne, 3] = zk
                    ent[ne, 4] = mask
                    ne += 1
            for e in range(ne):
                i = ent[e, 0]
                l = ent[e, 1]
                y = ent[e, 2]
                z = ent[e, 3]
                mask = ent[e, 4]
                r = y * nz + z
                ent[e, 5] = PB + r // bs
                # _leaf3 written out (same expressions, so bitwise equal to rebuild): a call,
                # even an inline="always" one, increfs/decrefs each array argument (atomics
                # dominated the event)
                sp = occ[i]
                if sp < 0:
                    for c in range(3):
                        if mask & (1 << c):
                            sr[l, r, c] = 0.0
                    continue
                if l < nx - 1:
                    jf = i + m
                elif periodic:
                    jf = i - (nx - 1) * m
                else:
                    jf = -1
                if l > 0:
                    jb = i - m
                elif periodic:
                    jb = i + (nx - 1) * m
                else:
                    jb = -1
                j0 = i - (ny - 1) * nz if y == ny - 1 else i + nz
                j1 = i + (ny - 1) * nz if y == 0 else i - nz
                j2 = i - (nz - 1) if z == nz - 1 else i + 1
                j3 = i + (nz - 1) if z == 0 else i - 1
                nus = nu[sp]
                bi = np.float64(bfac[sp, i])
                if trap:
                    sf = nus * bi
                    if mask & 1:
                        if jf >= 0:
                            sr[l, r, 0] = sf * np.float64(occ[jf] < 0)
                        elif sp == 0 and backopen:
                            sr[l, r, 0] = (1.0 - thb) * sf
                        else:
                            sr[l, r, 0] = 0.0
                    if mask & 2:
                        if jb >= 0:
                            sr[l, r, 1] = sf * np.float64(occ[jb] < 0)
                        elif sp == active and frontopen:
                            sr[l, r, 1] = (1.0 - thf) * sf
                        else:
                            sr[l, r, 1] = 0.0
                    if mask & 4:
                        nv = (np.int64(occ[j0] < 0) + np.int64(occ[j1] < 0) + np.int64(occ[j2] < 0)
                              + np.int64(occ[j3] < 0))
                        sr[l, r, 2] = sf * np.float64(nv)
                else:
                    _leaf3(i, l, y, z, occ, bfac, nu, ip, fp, sr, r, mask)
            # block sums after all site rates of the event are in (entries may share a
            # block); the selectors' block_sum / walk_until / walk_mask are written out here
            # (same operations and order, so the trees stay bitwise equal to a rebuild)
            for e in range(ne):
                l = ent[e, 1]
                mask = ent[e, 4]
                node = ent[e, 5]
                base = (node - PB) * bs
                for c in range(3):
                    if mask & (1 << c):
                        sb = 0.0
                        for q in range(bs):
                            sb += sr[l, base + q, c]
                        trees[l, node, c] = sb
            tree = ip[I_SEL] == TREE
            # anchors: column 0 becomes -1 for an anchor, else the anchor's entry index
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
                        mask = ent[e, 4]
                        k = ent[e, 5] >> 1
                        a = ent[an, 5]
                        while k != a:
                            if k > a:
                                for c in range(3):
                                    if mask & (1 << c):
                                        trees[l, k, c] = trees[l, 2 * k, c] + trees[l, 2 * k + 1, c]
                                k >>= 1
                            else:
                                a >>= 1
            for e in range(ne):
                if ent[e, 0] < 0:
                    l = ent[e, 1]
                    if tree:
                        mask = ent[e, 4]
                        k = ent[e, 5] >> 1
                        while k >= 1:
                            for c in range(3):
                                if mask & (1 << c):
                                    trees[l, k, c] = trees[l, 2 * k, c] + trees[l, 2 * k + 1, c]
                            k >>= 1
                    g = l + 1
                    if not dirty[g]:
                        dirty[g] = True
                        dlist[nd] = g
                        nd += 1
        if pot and full:
            fields(E, gf, gb, G, BG, ip, fp)
        # ---- top level
        if full:
            for q in range(nd):
                dirty[dlist[q]] = False
            rebuild_top(trees, ins, top, gf, gb, ip, fp)
        else:
            for q in range(nd):
                gg = dlist[q]
                dirty[gg] = False
                if kind == TREE:
                    # _group_weight and walk_up written out for the tree (same arithmetic):
                    # inlined array-argument calls cost atomic reference counting per call
                    if gg == 0:
                        w = gf[0] * ins[0, 1, 0]
                    elif gg == nx + 1:
                        w = gb[nx] * ins[1, 1, 0]
                    elif gg == nx + 2:
                        w = fp[F_RBEAM]
                    else:
                        lg = gg - 1
                        w = (gf[lg + 1] * trees[lg, 1, 0] + gb[lg] * trees[lg, 1, 1]
                             + trees[lg, 1, 2])
                    top[0, Pt + gg, 0] = w
                    k = (Pt + gg) >> 1
                    while k >= 1:
                        top[0, k, 0] = top[0, 2 * k, 0] + top[0, 2 * k + 1, 0]
                        k >>= 1
                else:
                    top[0, Pt + gg, 0] = _group_weight(gg, trees, ins, gf, gb, ip, fp)
        ist[S_NEV] += 1
    return 0


@njit(cache=True, inline="always")
def fields_one(g, E, gf, gb, G, BG, fp):
    """Single-gap update (galvanostatic / off): the same expression as ``fields``."""
    E[g] = fp[F_EBACK] + fp[F_C] * (G[g] - BG[g])
    gf[g] = np.exp(fp[F_HBQA] * E[g])
    gb[g] = np.exp(-fp[F_HBQA] * E[g])
