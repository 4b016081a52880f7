"""The hot loop (numba): arrays and scalars only, every option resolved to integers beforehand.

Event structure (PHYSICS.md §5, STYLE.md "events vs selection"):
* per layer ``l`` an interleaved 3-class sum tree ``trees[l, node, c]`` over the layer's sites,
  leaves = *site part* of the rate summed over vacant targets of class ``c``:
  0 = forward (+x, crosses gap l+1), 1 = backward (-x, crosses gap l), 2 = lateral (4 bonds);
* two insertion trees ``ins[0]`` (front reservoir -> vacant site of layer 0, gap 0) and
  ``ins[1]`` (back bulk reservoir -> vacant site of layer nx-1, gap nx);
* a top tree over ``nx + 2`` groups [front insertion, layer 0 .. nx-1, back insertion] with
  weights ``gf[l+1] F_l + gb[l] B_l + L_l`` (gap factors times class roots).
Order of events (shared by the tree and the linear reference): group, class, site, direction.

Declared update radius of a hop i -> j: leaves of i and j (all classes), of the neighbours of i
and j (the class pointing at i or j), insertion leaves of i and j; top weights of the layers
holding those sites and of the layers whose gap field changed (all layers for a uniform shift).
"""
import numpy as np
from numba import njit

from .rates import site_rate
from .rng import next_double
from .selectors import TREE, pick, total, walk_up

# ipar slots
I_MODEL, I_SEL, I_PERIODIC, I_BACKKIND, I_DRIVE, I_ACTIVE, I_FRONTOPEN, I_NX, I_NY, I_NZ = range(10)
I_P, I_PT, I_HIST, I_IONS, I_LPS, I_NBINS, I_BACKOPEN, I_FIELD = range(10, 18)
N_IPAR = 18
# fpar slots
F_BETA, F_A, F_C, F_EBACK, F_U, F_THF, F_THB, F_BRESF, F_BRESB, F_HBQA, F_TSTOP = range(11)
N_FPAR = 11
# ist slots (checkpointed integer state)
S_NEV, S_OUTK, S_NFREE, S_PHASE = range(4)
# event counters per species
C_FWD, C_BWD, C_LAT, C_FRONT_IN, C_FRONT_OUT, C_BACK_IN, C_BACK_OUT = range(7)
COUNTER_NAMES = ("hop_forward", "hop_backward", "hop_lateral", "front_in", "front_out",
                 "back_in", "back_out")
BACK_BULK = 0
BACK_ELECTRODE = 1


@njit(cache=True)
def _lat_nbr(i, r, nz, ny, k):
    """Site index of lateral neighbour k (0:+y 1:-y 2:+z 3:-z) of site i (layer offset r)."""
    y = r // nz
    z = r - y * nz
    if k == 0:
        return i - (ny - 1) * nz if y == ny - 1 else i + nz
    if k == 1:
        return i + (ny - 1) * nz if y == 0 else i - nz
    if k == 2:
        return i - (nz - 1) if z == nz - 1 else i + 1
    return i + (nz - 1) if z == 0 else i - 1


@njit(cache=True)
def _leaf(i, c, occ, bfac, nu, ip, fp):
    """Site part of the summed rate of class c out of site i (0 if i is vacant)."""
    sp = occ[i]
    if sp < 0:
        return 0.0
    nx = ip[I_NX]
    nz = ip[I_NZ]
    m = ip[I_NY] * nz
    model = ip[I_MODEL]
    l = i // m
    bi = np.float64(bfac[sp, i])
    nus = nu[sp]
    if c == 0:
        if l < nx - 1:
            j = i + m
        elif ip[I_PERIODIC]:
            j = i - (nx - 1) * m
        else:
            if sp == 0 and ip[I_BACKOPEN]:
                return (1.0 - fp[F_THB]) * site_rate(model, nus, bi, fp[F_BRESB])
            return 0.0
        if occ[j] < 0:
            return site_rate(model, nus, bi, np.float64(bfac[sp, j]))
        return 0.0
    if c == 1:
        if l > 0:
            j = i - m
        elif ip[I_PERIODIC]:
            j = i + (nx - 1) * m
        else:
            if sp == ip[I_ACTIVE] and ip[I_FRONTOPEN]:
                return (1.0 - fp[F_THF]) * site_rate(model, nus, bi, fp[F_BRESF])
            return 0.0
        if occ[j] < 0:
            return site_rate(model, nus, bi, np.float64(bfac[sp, j]))
        return 0.0
    r = i - l * m
    s = 0.0
    for k in range(4):
        j = _lat_nbr(i, r, nz, ip[I_NY], k)
        if occ[j] < 0:
            s += site_rate(model, nus, bi, np.float64(bfac[sp, j]))
    return s


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


@njit(cache=True)
def _mark(g, dirty, dlist, nd):
    if not dirty[g]:
        dirty[g] = True
        dlist[nd] = g
        return nd + 1
    return nd


@njit(cache=True)
def _refresh(i, cmask, occ, bfac, nu, ip, fp, trees, ins, dirty, dlist, nd):
    """Recompute the leaves of site i for the classes in bitmask cmask; mark its group dirty."""
    m = ip[I_NY] * ip[I_NZ]
    P = ip[I_P]
    l = i // m
    r = i - l * m
    for c in range(3):
        if cmask & (1 << c):
            trees[l, P + r, c] = _leaf(i, c, occ, bfac, nu, ip, fp)
    if ip[I_SEL] == TREE:
        k = (P + r) >> 1
        while k >= 1:
            a = 2 * k
            trees[l, k, 0] = trees[l, a, 0] + trees[l, a + 1, 0]
            trees[l, k, 1] = trees[l, a, 1] + trees[l, a + 1, 1]
            trees[l, k, 2] = trees[l, a, 2] + trees[l, a + 1, 2]
            k >>= 1
    return _mark(l + 1, dirty, dlist, nd)


@njit(cache=True)
def _refresh_ins(i, occ, bfac, nu, ip, fp, ins, dirty, dlist, nd):
    """Insertion leaves of site i if it lies in a boundary layer of an open lattice."""
    if ip[I_PERIODIC]:
        return nd
    nx = ip[I_NX]
    m = ip[I_NY] * ip[I_NZ]
    l = i // m
    P = ip[I_P]
    if l == 0:
        ins[0, P + i, 0] = _ins_leaf(i, 0, occ, bfac, nu, ip, fp)
        if ip[I_SEL] == TREE:
            walk_up(ins, 0, P, i, 0)
        nd = _mark(0, dirty, dlist, nd)
    if l == nx - 1:
        r = i - l * m
        ins[1, P + r, 0] = _ins_leaf(i, 1, occ, bfac, nu, ip, fp)
        if ip[I_SEL] == TREE:
            walk_up(ins, 1, P, r, 0)
        nd = _mark(nx + 1, dirty, dlist, nd)
    return nd


@njit(cache=True)
def _group_weight(g, trees, ins, gf, gb, ip):
    nx = ip[I_NX]
    P = ip[I_P]
    m = ip[I_NY] * ip[I_NZ]
    kind = ip[I_SEL]
    if g == 0:
        return gf[0] * total(ins, 0, P, m, 0, kind)
    if g == nx + 1:
        return gb[nx] * total(ins, 1, P, m, 0, kind)
    l = g - 1
    return (gf[l + 1] * total(trees, l, P, m, 0, kind) + gb[l] * total(trees, l, P, m, 1, kind)
            + total(trees, l, P, m, 2, kind))


@njit(cache=True)
def rebuild_top(trees, ins, top, gf, gb, ip):
    """All group weights and the top tree from scratch. O(nx)."""
    nx = ip[I_NX]
    Pt = ip[I_PT]
    for k in range(2 * Pt):
        top[0, k, 0] = 0.0
    for g in range(nx + 2):
        top[0, Pt + g, 0] = _group_weight(g, trees, ins, gf, gb, ip)
    if ip[I_SEL] == TREE:
        for k in range(Pt - 1, 0, -1):
            top[0, k, 0] = top[0, 2 * k, 0] + top[0, 2 * k + 1, 0]


@njit(cache=True)
def fields(E, gf, gb, S, BG, ip, fp):
    """Gap fields [V/m] and factors from the integer cumulative counts S (see electrostatics)."""
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
        e0 = (fp[F_U] / fp[F_A] + c * (S[nx + 1] - bgsum)) / (nx + 1)
    else:
        e0 = fp[F_EBACK]
    for g in range(nx + 1):
        E[g] = e0 - c * (S[g] - BG[g])
        gf[g] = np.exp(h * E[g])
        gb[g] = np.exp(-h * E[g])


@njit(cache=True)
def rebuild(occ, bfac, nu, trees, ins, top, E, gf, gb, S, BG, ip, fp):
    """Full recompute of every leaf, tree, field and group weight from the state."""
    nx = ip[I_NX]
    m = ip[I_NY] * ip[I_NZ]
    P = ip[I_P]
    trees[:] = 0.0
    ins[:] = 0.0
    for l in range(nx):
        for r in range(m):
            i = l * m + r
            for c in range(3):
                trees[l, P + r, c] = _leaf(i, c, occ, bfac, nu, ip, fp)
        if ip[I_SEL] == TREE:
            for k in range(P - 1, 0, -1):
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
    fields(E, gf, gb, S, BG, ip, fp)
    rebuild_top(trees, ins, top, gf, gb, ip)


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
def advance(occ, site_ion, bfac, nu, ebin, trees, ins, top, dirty, dlist,
            ion_sp, ion_site, ion_disp, free_ids, S, BG, E, gf, gb, cnt, coll, counters,
            rng, clock, ist, ip, fp, out_times,
            r_cnt, r_E, r_counters, r_coll, r_hist, r_ion, r_nev, ev_stop):
    """Run events until ``ist[S_NEV] == ev_stop`` (return 0), the phase end ``fp[F_TSTOP]``
    (return 1) or until no event is possible (time jumps to the phase end, return 2).

    Returning never discards random numbers except at a phase end, which every run shares, so
    chunking does not change the trajectory (exact resume).
    """
    nx = ip[I_NX]
    ny = ip[I_NY]
    nz = ip[I_NZ]
    m = ny * nz
    P = ip[I_P]
    Pt = ip[I_PT]
    kind = ip[I_SEL]
    periodic = ip[I_PERIODIC]
    pot = ip[I_DRIVE] == 2 and ip[I_FIELD] == 1
    t_stop = fp[F_TSTOP]
    n_out = out_times.shape[0]
    while ist[S_NEV] < ev_stop:
        tot = total(top, 0, Pt, nx + 2, 0, kind)
        t = clock[0]
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
        g, rem = pick(top, 0, Pt, nx + 2, 0, u1 * tot, kind)
        nd = 0
        full = False
        if g == 0 or g == nx + 1:
            side = 0 if g == 0 else 1
            fac = gf[0] if side == 0 else gb[nx]
            r, rem = pick(ins, side, P, m, 0, rem / fac, kind)
            if side == 0:
                sp = ip[I_ACTIVE]
                j = r
            else:
                sp = 0
                j = (nx - 1) * m + r
            ion = free_ids[ist[S_NFREE] - 1]
            ist[S_NFREE] -= 1
            occ[j] = sp
            site_ion[j] = ion
            ion_sp[ion] = sp
            ion_site[ion] = j
            ion_disp[ion, 0] = 0
            ion_disp[ion, 1] = 0
            ion_disp[ion, 2] = 0
            lj = j // m
            cnt[sp, lj] += 1
            if side == 0:
                counters[sp, C_FRONT_IN] += 1
                coll[sp, 0] += 1
                S[0] += 1
                S[nx + 1] += 1
                if pot:
                    full = True
                else:
                    fields_one(0, E, gf, gb, S, BG, fp)
            else:
                counters[sp, C_BACK_IN] += 1
                coll[sp, 0] -= 1
                for q in range(nx):
                    S[q] += 1
                S[nx + 1] += nx
                fields(E, gf, gb, S, BG, ip, fp)
                full = True
            nd = _refresh(j, 7, occ, bfac, nu, ip, fp, trees, ins, dirty, dlist, nd)
            nd = _refresh_ins(j, occ, bfac, nu, ip, fp, ins, dirty, dlist, nd)
            nd = _refresh_nbrs(j, -1, occ, bfac, nu, ip, fp, trees, ins, dirty, dlist, nd)
        else:
            l = g - 1
            F = total(trees, l, P, m, 0, kind)
            B = total(trees, l, P, m, 1, kind)
            L = total(trees, l, P, m, 2, kind)
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
            r, rem = pick(trees, l, P, m, c, rem, kind)
            i = l * m + r
            sp = occ[i]
            ion = site_ion[i]
            j = -1
            if c == 0:
                if l < nx - 1:
                    j = i + m
                elif periodic:
                    j = i - (nx - 1) * m
                counters[sp, C_FWD] += 1
                coll[sp, 0] += 1
                ion_disp[ion, 0] += 1
            elif c == 1:
                if l > 0:
                    j = i - m
                elif periodic:
                    j = i + (nx - 1) * m
                counters[sp, C_BWD] += 1
                coll[sp, 0] -= 1
                ion_disp[ion, 0] -= 1
            else:
                # lateral: which of the vacant neighbours, by the remainder
                bi = np.float64(bfac[sp, i])
                kk = -1
                for k in range(4):
                    jj = _lat_nbr(i, r, nz, ny, k)
                    if occ[jj] < 0:
                        w = site_rate(ip[I_MODEL], nu[sp], bi, np.float64(bfac[sp, jj]))
                        kk = k
                        j = jj
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
                lj = j // m
                cnt[sp, lj] += 1
                if c < 2 and not periodic:
                    gap = l + 1 if c == 0 else l
                    d = 1 if c == 0 else -1
                    S[gap] += d
                    S[nx + 1] += d
                    if pot:
                        full = True
                    else:
                        fields_one(gap, E, gf, gb, S, BG, fp)
                        nd = _mark(gap, dirty, dlist, nd)       # layer gap-1 (its fwd)
                        nd = _mark(gap + 1, dirty, dlist, nd)   # layer gap (its bwd)
            else:
                # left through a boundary
                ion_site[ion] = -1
                free_ids[ist[S_NFREE]] = ion
                ist[S_NFREE] += 1
                if c == 0:
                    counters[sp, C_FWD] -= 1
                    counters[sp, C_BACK_OUT] += 1
                    for q in range(nx):
                        S[q] -= 1
                    S[nx + 1] -= nx
                    fields(E, gf, gb, S, BG, ip, fp)
                    full = True
                else:
                    counters[sp, C_BWD] -= 1
                    counters[sp, C_FRONT_OUT] += 1
                    S[0] -= 1
                    S[nx + 1] -= 1
                    if pot:
                        full = True
                    else:
                        fields_one(0, E, gf, gb, S, BG, fp)
                        nd = _mark(0, dirty, dlist, nd)
                        nd = _mark(1, dirty, dlist, nd)
            nd = _refresh(i, 7, occ, bfac, nu, ip, fp, trees, ins, dirty, dlist, nd)
            nd = _refresh_ins(i, occ, bfac, nu, ip, fp, ins, dirty, dlist, nd)
            nd = _refresh_nbrs(i, j, occ, bfac, nu, ip, fp, trees, ins, dirty, dlist, nd)
            if j >= 0:
                nd = _refresh(j, 7, occ, bfac, nu, ip, fp, trees, ins, dirty, dlist, nd)
                nd = _refresh_ins(j, occ, bfac, nu, ip, fp, ins, dirty, dlist, nd)
                nd = _refresh_nbrs(j, i, occ, bfac, nu, ip, fp, trees, ins, dirty, dlist, nd)
        if pot and full:
            fields(E, gf, gb, S, BG, ip, fp)
        # ---- top level
        if full:
            for q in range(nd):
                dirty[dlist[q]] = False
            rebuild_top(trees, ins, top, gf, gb, ip)
        else:
            for q in range(nd):
                gg = dlist[q]
                dirty[gg] = False
                top[0, Pt + gg, 0] = _group_weight(gg, trees, ins, gf, gb, ip)
                if kind == TREE:
                    walk_up(top, 0, Pt, gg, 0)
        ist[S_NEV] += 1
    return 0


@njit(cache=True)
def fields_one(g, E, gf, gb, S, BG, fp):
    """Galvanostatic single-gap update (E_base = E_back)."""
    E[g] = fp[F_EBACK] - fp[F_C] * (S[g] - BG[g])
    gf[g] = np.exp(fp[F_HBQA] * E[g])
    gb[g] = np.exp(-fp[F_HBQA] * E[g])


@njit(cache=True)
def _refresh_nbrs(i, skip, occ, bfac, nu, ip, fp, trees, ins, dirty, dlist, nd):
    """Neighbours of i (except ``skip``): recompute the class of their bond towards i."""
    nx = ip[I_NX]
    nz = ip[I_NZ]
    m = ip[I_NY] * nz
    l = i // m
    r = i - l * m
    # neighbour in +x hops backward to i, neighbour in -x hops forward to i
    if l < nx - 1:
        k = i + m
    elif ip[I_PERIODIC]:
        k = i - (nx - 1) * m
    else:
        k = -1
    if k >= 0 and k != skip and occ[k] >= 0:
        nd = _refresh(k, 2, occ, bfac, nu, ip, fp, trees, ins, dirty, dlist, nd)
    if l > 0:
        k = i - m
    elif ip[I_PERIODIC]:
        k = i + (nx - 1) * m
    else:
        k = -1
    if k >= 0 and k != skip and occ[k] >= 0:
        nd = _refresh(k, 1, occ, bfac, nu, ip, fp, trees, ins, dirty, dlist, nd)
    for q in range(4):
        k = _lat_nbr(i, r, nz, ip[I_NY], q)
        if k != skip and occ[k] >= 0:
            nd = _refresh(k, 4, occ, bfac, nu, ip, fp, trees, ins, dirty, dlist, nd)
    return nd
