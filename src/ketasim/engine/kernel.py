"""The fast engine's compiled part: a tape interpreter and a Rosenbrock integrator that
advances a group of :data:`LANES` subjects at once (numba; compiled once per
installation and cached, the same machine code for every model).

Layout: every per-subject quantity has the lanes last, ``(..., LANES)``, so that one
instruction of a tape (see :mod:`ketasim.engine.tape`) runs over the group in one short
contiguous loop; the cost of decoding the instruction is shared by the lanes. Each lane
keeps its own time, step size, error control and status: the group only shares the
protocol's segments (the dose breakpoints, the same for every subject of a cohort), and a
lane that has reached the segment end waits for the others. No arithmetic mixes lanes, so
a subject's numbers do not depend on which subjects share its group, on the number of
threads, or on how a cohort is split into chunks.

Method: the linearly implicit Rosenbrock schemes of :mod:`ketasim.engine.fast` (KPP
formulation) with the analytic sparse Jacobian and a sparse LU without pivoting whose
program (index arrays) is computed once per model.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ketasim.engine.base import DIVERGED
from ketasim.engine.tape import (
    ADD,
    CONST,
    DIV,
    DPOW,
    EXP,
    LOADP,
    LOADR,
    LOADU,
    LOADY,
    LOG,
    MAX,
    MIN,
    MUL,
    NEG,
    POW,
    SELGE,
    SELLE,
    SQRT,
    STORE0,
    STORE1,
    SUB,
    T_REG,
)

LANES = 16  # subjects per group

# status codes of the integrator
ST_OK, ST_STEPS, ST_SMALL, ST_DIVERGED, ST_SINGULAR = 0, 1, 2, 3, 4


@njit(cache=True, error_model="numpy", nogil=True)
def run_tape(ins, consts, R, t, y, p, u, r, out0, out1):
    """Run tape ``ins`` (m, 6) over the lanes: registers R (n_regs, L); t (L,); y, p, u,
    r, out0, out1 (k, L)."""
    L = R.shape[1]
    for g in range(L):
        R[T_REG, g] = t[g]
    for q in range(ins.shape[0]):
        op = ins[q, 0]
        d = ins[q, 1]
        a = ins[q, 2]
        b = ins[q, 3]
        if op == MUL:
            for g in range(L):
                R[d, g] = R[a, g] * R[b, g]
        elif op == ADD:
            for g in range(L):
                R[d, g] = R[a, g] + R[b, g]
        elif op == SUB:
            for g in range(L):
                R[d, g] = R[a, g] - R[b, g]
        elif op == DIV:
            for g in range(L):
                R[d, g] = R[a, g] / R[b, g]
        elif op == LOADY:
            for g in range(L):
                R[d, g] = y[a, g]
        elif op == CONST:
            c = consts[a]
            for g in range(L):
                R[d, g] = c
        elif op == STORE0:
            for g in range(L):
                out0[d, g] = R[a, g]
        elif op == NEG:
            for g in range(L):
                R[d, g] = -R[a, g]
        elif op == POW:
            for g in range(L):
                R[d, g] = R[a, g] ** R[b, g]
        elif op == EXP:
            for g in range(L):
                R[d, g] = math.exp(R[a, g])
        elif op == MAX:
            for g in range(L):
                x = R[a, g]
                z = R[b, g]
                R[d, g] = z if z > x else x
        elif op == MIN:
            for g in range(L):
                x = R[a, g]
                z = R[b, g]
                R[d, g] = z if z < x else x
        elif op == SQRT:
            for g in range(L):
                R[d, g] = math.sqrt(R[a, g])
        elif op == LOG:
            for g in range(L):
                R[d, g] = math.log(R[a, g])
        elif op == LOADP:
            for g in range(L):
                R[d, g] = p[a, g]
        elif op == LOADU:
            for g in range(L):
                R[d, g] = u[a, g]
        elif op == LOADR:
            for g in range(L):
                R[d, g] = r[a, g]
        elif op in (SELGE, SELLE):
            c = ins[q, 4]
            e = ins[q, 5]
            for g in range(L):
                hit = R[a, g] >= R[b, g] if op == SELGE else R[a, g] <= R[b, g]
                R[d, g] = R[c, g] if hit else R[e, g]
        elif op == DPOW:
            for g in range(L):
                x = R[a, g]
                n = R[b, g]
                if n == 1.0:
                    R[d, g] = 1.0
                elif x == 0.0:
                    R[d, g] = 0.0
                else:
                    R[d, g] = n * x ** (n - 1.0)
        elif op == STORE1:
            for g in range(L):
                out1[d, g] = R[a, g]


@njit(cache=True, error_model="numpy", nogil=True)
def _lu(a, low_pos, low_div, upd_ptr, upd_tgt, upd_src, diag, bad):
    """In-place sparse LU of every lane of a (nnz, L); bad[g] = 1 for a zero or
    non-finite pivot."""
    L = a.shape[1]
    for q in range(low_pos.size):
        jj = low_pos[q]
        dv = low_div[q]
        for g in range(L):
            a[jj, g] = a[jj, g] / a[dv, g]
        for w in range(upd_ptr[q], upd_ptr[q + 1]):
            tg = upd_tgt[w]
            sr = upd_src[w]
            for g in range(L):
                a[tg, g] -= a[jj, g] * a[sr, g]
    for g in range(L):
        bad[g] = 0
    for k in range(diag.size):
        for g in range(L):
            v = a[diag[k], g]
            if v == 0.0 or not math.isfinite(v):
                bad[g] = 1


@njit(cache=True, error_model="numpy", nogil=True)
def _sv(a, b, rowptr, cols, diag):
    """Solve LU x = b in place for every lane (b (n, L))."""
    n, L = b.shape
    for k in range(n):
        for jj in range(rowptr[k], diag[k]):
            c = cols[jj]
            for g in range(L):
                b[k, g] -= a[jj, g] * b[c, g]
    for k in range(n - 1, -1, -1):
        for jj in range(diag[k] + 1, rowptr[k + 1]):
            c = cols[jj]
            for g in range(L):
                b[k, g] -= a[jj, g] * b[c, g]
        dk = diag[k]
        for g in range(L):
            b[k, g] = b[k, g] / a[dk, g]


@njit(cache=True, error_model="numpy", nogil=True)
def _group(tapes, consts, nreg, lu_prog, lu_pat, P, Y, ATOL, rtol, seg_t, U, bol_seg,
           bol_state, BOL, inf_seg, inf_state, INF, t_out, out_seg, out, tab, elo,
           autonomous, max_steps, status, t_fail, stats, lanes):
    """Integrate one group in place. P (n_par, L), Y/ATOL (n, L), U (n_seg, n_inp, L),
    BOL/INF (k, L), out (L, n, n_out), status/t_fail (L,), stats (L, 4); lanes: how many
    of the L lanes hold subjects (the rest repeat lane 0 and are never reported)."""
    pre, rhs_t, jac_t = tapes
    low_pos, low_div, upd_ptr, upd_tgt, upd_src = lu_prog
    rowptr, cols, diag = lu_pat
    rA, rC, rM, rE, ralpha, rgamma, rnewf = tab
    n, L = Y.shape
    ns = rM.size
    nnz = cols.size
    R = np.zeros((nreg, L))
    dummy = np.zeros((1, L))
    tv = np.zeros(L)
    run_tape(pre, consts, R, tv, Y, P, dummy, dummy, dummy, dummy)
    jv = np.zeros((nnz, L))
    lu = np.zeros((nnz, L))
    dfdt = np.zeros((n, L))
    f0 = np.zeros((n, L))
    fc = np.zeros((n, L))
    ynew = np.zeros((n, L))
    yerr = np.zeros((n, L))
    K = np.zeros((ns, n, L))
    r = np.zeros((n, L))
    u = np.zeros((U.shape[1], L))
    t = np.zeros(L)
    h = np.zeros(L)
    h_free = np.zeros(L)
    t_stop = np.zeros(L)
    ts = np.zeros(L)
    ghinv = np.zeros(L)
    bad = np.zeros(L, dtype=np.int64)
    clipped = np.zeros(L, dtype=np.bool_)
    is_out = np.zeros(L, dtype=np.bool_)
    rej_last = np.zeros(L, dtype=np.bool_)
    mode = np.zeros(L, dtype=np.int64)  # 0 new step, 1 after a rejection, 2 after singular
    dd1 = np.zeros(L)
    rej_more = np.zeros(L, dtype=np.bool_)
    active = np.zeros(L, dtype=np.bool_)
    alive = np.ones(L, dtype=np.bool_)
    k_out = np.zeros(L, dtype=np.int64)
    steps = np.zeros(L, dtype=np.int64)
    fac_min, fac_max, fac_safe, fac_rej = 0.2, 6.0, 0.9, 0.1
    n_seg = seg_t.size - 1
    for g in range(lanes, L):
        alive[g] = False
    for sg in range(n_seg):
        a = seg_t[sg]
        b = seg_t[sg + 1]
        for q in range(bol_seg.size):
            if bol_seg[q] == sg:
                for g in range(L):
                    Y[bol_state[q], g] += BOL[q, g]
        r[:, :] = 0.0
        for q in range(inf_seg.size):
            if inf_seg[q] == sg:
                for g in range(L):
                    r[inf_state[q], g] += INF[q, g]
        u[:, :] = U[sg]
        ko = 0
        while ko < t_out.size and (out_seg[ko] != sg or t_out[ko] < a):
            ko += 1
        if ko < t_out.size and out_seg[ko] == sg and t_out[ko] == a:
            for g in range(L):
                if alive[g]:
                    out[g, :, ko] = Y[:, g]
            ko += 1
        if b <= a:
            continue
        hmin = 1e-13 * max(1.0, abs(a), abs(b))
        for g in range(L):
            t[g] = a
            k_out[g] = ko
            active[g] = alive[g]
            rej_last[g] = False
            rej_more[g] = False
            mode[g] = 0
        # initial step (Hairer, Norsett & Wanner, sec. II.4), per lane
        run_tape(rhs_t, consts, R, t, Y, P, u, r, f0, dummy)
        span = b - a
        for g in range(L):
            d0 = 0.0
            d1 = 0.0
            for i in range(n):
                sc = ATOL[i, g] + rtol * abs(Y[i, g])
                d0 += (Y[i, g] / sc) ** 2
                d1 += (f0[i, g] / sc) ** 2
            d0 = math.sqrt(d0 / n)
            d1 = math.sqrt(d1 / n)
            dd1[g] = d1
            hh = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
            h[g] = min(hh, span)
            ts[g] = a + h[g]
            for i in range(n):
                ynew[i, g] = Y[i, g] + h[g] * f0[i, g]
        run_tape(rhs_t, consts, R, ts, ynew, P, u, r, fc, dummy)
        for g in range(L):
            d2 = 0.0
            for i in range(n):
                sc = ATOL[i, g] + rtol * abs(Y[i, g])
                d2 += ((fc[i, g] - f0[i, g]) / sc) ** 2
            d2 = math.sqrt(d2 / n) / h[g]
            if not math.isfinite(d2):
                h[g] = min(1e-6, span)
                continue
            m = max(dd1[g], d2)
            h1 = max(1e-6, h[g] * 1e-3) if m <= 1e-15 else (0.01 / m) ** (1.0 / elo)
            h[g] = min(100.0 * h[g], h1, span)
        while True:
            # each active lane: outputs due now, its next stop, its step for this attempt
            n_act = 0
            for g in range(L):
                while active[g]:
                    if t[g] >= b:
                        active[g] = False
                        break
                    kk = k_out[g]
                    ts[g] = b
                    is_out[g] = False
                    if kk < t_out.size and out_seg[kk] == sg and t_out[kk] < b:
                        ts[g] = t_out[kk]
                        is_out[g] = True
                    if ts[g] <= t[g]:
                        out[g, :, kk] = Y[:, g]
                        k_out[g] = kk + 1
                        continue
                    break
                if not active[g]:
                    h[g] = 1.0  # an idle lane computes harmless numbers
                    continue
                n_act += 1
                if mode[g] == 0:
                    h_free[g] = h[g]
                if mode[g] != 2:
                    clipped[g] = False
                    if t[g] + 1.0001 * h[g] >= ts[g]:
                        h[g] = ts[g] - t[g]
                        clipped[g] = True
                steps[g] += 1
                if steps[g] > max_steps:
                    status[g] = ST_STEPS
                elif h[g] < hmin:
                    status[g] = ST_SMALL
                if status[g] != ST_OK:
                    t_fail[g] = t[g]
                    active[g] = False
                    alive[g] = False
                    n_act -= 1
                    h[g] = 1.0
            if n_act == 0:
                break
            t_stop[:] = ts
            run_tape(jac_t, consts, R, t, Y, P, u, r, jv, dfdt)
            for g in range(L):
                ghinv[g] = 1.0 / (h[g] * rgamma[0])
                if active[g]:
                    stats[g, 1] += 1
            for jj in range(nnz):
                for g in range(L):
                    lu[jj, g] = -jv[jj, g]
            for i in range(n):
                for g in range(L):
                    lu[diag[i], g] += ghinv[g]
            _lu(lu, low_pos, low_div, upd_ptr, upd_tgt, upd_src, diag, bad)
            for st in range(ns):
                off = st * (st - 1) // 2
                if st == 0:
                    fc[:, :] = f0
                elif rnewf[st] != 0.0:
                    ynew[:, :] = Y
                    for j in range(st):
                        c = rA[off + j]
                        if c != 0.0:
                            for i in range(n):
                                for g in range(L):
                                    ynew[i, g] += c * K[j, i, g]
                    for g in range(L):
                        ts[g] = t[g] + ralpha[st] * h[g]
                    run_tape(rhs_t, consts, R, ts, ynew, P, u, r, fc, dummy)
                    for g in range(L):
                        if active[g]:
                            stats[g, 0] += 1
                for i in range(n):
                    for g in range(L):
                        K[st, i, g] = fc[i, g]
                for j in range(st):
                    for g in range(L):
                        ghinv[g] = rC[off + j] / h[g]
                    for i in range(n):
                        for g in range(L):
                            K[st, i, g] += ghinv[g] * K[j, i, g]
                if not autonomous and rgamma[st] != 0.0:
                    for g in range(L):
                        ghinv[g] = h[g] * rgamma[st]
                    for i in range(n):
                        for g in range(L):
                            K[st, i, g] += ghinv[g] * dfdt[i, g]
                _sv(lu, K[st], rowptr, cols, diag)
            ynew[:, :] = Y
            yerr[:, :] = 0.0
            for j in range(ns):
                cm = rM[j]
                ce = rE[j]
                if cm != 0.0:
                    for i in range(n):
                        for g in range(L):
                            ynew[i, g] += cm * K[j, i, g]
                if ce != 0.0:
                    for i in range(n):
                        for g in range(L):
                            yerr[i, g] += ce * K[j, i, g]
            for g in range(L):
                if not active[g]:
                    continue
                if bad[g] != 0:  # singular: halve the step and try again
                    h[g] *= 0.5
                    clipped[g] = False
                    rej_last[g] = True
                    mode[g] = 2
                    if h[g] < hmin:
                        status[g] = ST_SINGULAR
                        t_fail[g] = t[g]
                        active[g] = False
                        alive[g] = False
                    continue
                acc = 0.0
                for i in range(n):
                    sc = ATOL[i, g] + rtol * max(abs(Y[i, g]), abs(ynew[i, g]))
                    acc += (yerr[i, g] / sc) ** 2
                err = math.sqrt(acc / n)
                if not math.isfinite(err):
                    err = 1e10
                fac = min(fac_max, max(fac_min, fac_safe / err ** (1.0 / elo)))
                hnew = h[g] * fac
                if err <= 1.0:
                    stats[g, 2] += 1
                    t_prev = t[g]
                    t[g] = t_stop[g] if clipped[g] else t[g] + h[g]
                    big = 0.0
                    for i in range(n):
                        Y[i, g] = ynew[i, g]
                        big = max(big, abs(ynew[i, g]))
                    mode[g] = 0
                    if big > DIVERGED:
                        status[g] = ST_DIVERGED
                        t_fail[g] = t_prev
                        active[g] = False
                        alive[g] = False
                        continue
                    if clipped[g]:
                        hnew = max(hnew, h_free[g])
                    if rej_last[g]:
                        hnew = min(hnew, h_free[g])
                    rej_last[g] = False
                    rej_more[g] = False
                    h[g] = hnew
                    if clipped[g] and is_out[g]:
                        out[g, :, k_out[g]] = Y[:, g]
                        k_out[g] += 1
                    clipped[g] = False
                else:
                    stats[g, 3] += 1
                    clipped[g] = False
                    if rej_more[g]:
                        hnew = h[g] * fac_rej
                    rej_more[g] = rej_last[g]
                    rej_last[g] = True
                    h[g] = hnew
                    h_free[g] = hnew
                    mode[g] = 1
            run_tape(rhs_t, consts, R, t, Y, P, u, r, f0, dummy)
            for g in range(L):
                if active[g]:
                    stats[g, 0] += 1
        if sg == n_seg - 1:
            for g in range(L):
                if alive[g]:
                    kk = k_out[g]
                    while kk < t_out.size and out_seg[kk] == sg:
                        out[g, :, kk] = Y[:, g]
                        kk += 1


@njit(cache=True, error_model="numpy", parallel=True)
def solve_all(tapes, consts, nreg, lu_prog, lu_pat, P, Y0, ATOL, rtol, seg_t, U, bol_seg,
              bol_state, BOL, inf_seg, inf_state, INF, t_out, out_seg, out, tab, elo,
              autonomous, max_steps, status, t_fail, stats, lanes):
    """All subjects, in groups of LANES in parallel. Arrays with subjects last: P
    (n_par, N), Y0/ATOL (n, N), U (n_seg, n_inp, N), BOL/INF (k, N); out (N, n, n_out),
    status/t_fail (N,), stats (N, 4): rhs calls, Jacobians, accepted, rejected steps;
    ``lanes`` subjects per group (:data:`LANES`)."""
    N = P.shape[1]
    L = lanes
    n_groups = (N + L - 1) // L
    for q in prange(n_groups):
        lo = q * L
        hi = min(N, lo + L)
        m = hi - lo
        idx = np.empty(L, dtype=np.int64)
        for g in range(L):
            idx[g] = lo + g if g < m else lo
        Pg = np.ascontiguousarray(P[:, idx])
        Yg = np.ascontiguousarray(Y0[:, idx])
        Ag = np.ascontiguousarray(ATOL[:, idx])
        Ug = np.ascontiguousarray(U[:, :, idx])
        Bg = np.ascontiguousarray(BOL[:, idx])
        Ig = np.ascontiguousarray(INF[:, idx])
        og = np.full((L, out.shape[1], out.shape[2]), np.nan)
        sg = np.zeros(L, dtype=np.int64)
        tg = np.zeros(L)
        stg = np.zeros((L, 4), dtype=np.int64)
        _group(tapes, consts, nreg, lu_prog, lu_pat, Pg, Yg, Ag, rtol, seg_t, Ug, bol_seg,
               bol_state, Bg, inf_seg, inf_state, Ig, t_out, out_seg, og, tab, elo,
               autonomous, max_steps, sg, tg, stg, m)
        for g in range(m):
            out[lo + g] = og[g]
            status[lo + g] = sg[g]
            t_fail[lo + g] = tg[g]
            stats[lo + g] = stg[g]
