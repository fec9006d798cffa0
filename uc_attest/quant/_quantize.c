/* Native exact quantizer of the pack schemes: bit for bit the reference in uc_attest/quant/quantize.py,
 * rotation.py and ldlq.py (docs/format.md 3.1-3.6), an order of magnitude faster.
 *
 * Per group of g consecutive weights (C order, the tail zero-padded):
 *   1. load: the source value as binary64 (exact from BF16/F16/F32);
 *   2. rotate (uc-rht-*): y = H_g (D x) 2^-floor(k/2), the signs D a sign flip, the Walsh-Hadamard butterflies
 *      in binary64 in the reference's order (h = 1, 2, 4, ...), the power of two exact;
 *   3. search: every candidate (scale, zero-point) of the clipping grid and the least-squares refits, scored by
 *      the exact integer squared error, the first strictly lower error kept (lowest candidate index on ties);
 *   4. codes: round-half-even of y / s plus z, clamped; or (uc-rht-ldlq/1 with committed moments) the error
 *      feedback q_k = clamp(floor((u_k 2^16 + z 2^28 + 2^27 + sum_{i<k} e_i M_ik) / 2^28)) in exact int64;
 *   5. the codes packed b bits each, little-endian (docs/format.md 3.2).
 * Only IEEE-754 binary64 + - * / of the same operands in the same order as the reference, conversions that are
 * exact or correctly rounded (binary64 -> binary32 -> binary16, round to nearest even), nearbyint in the default
 * rounding mode (ties to even, as torch.round), and integer arithmetic with two's-complement wraparound (as
 * torch's int64). Built with -ffp-contract=off -fno-fast-math: no FMA contracts a*b+c. The result does not
 * depend on how the groups are split between calls or threads: every call is a run of whole groups.
 * tests/unit/test_quantize_native.py compares every output with the torch reference, bit for bit.
 *
 * Work runs outside the GIL; the caller splits a tensor's groups between threads (uc_attest.quant.native).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define UC_X86 1
#include <immintrin.h>
#endif

#include "_exact.h"

#define ERR_BITS 26
#define F_U 12
#define F_M 16
#define MAX_GRID 64
/* Widest feedback block (scheme.py WIDE_MAX: uc-rht-ldlq/3 feeds errors across up to 2048 columns of a row). */
#define MAX_BLOCK 2048

typedef struct {
    int g, k, bits, qmax, dtype, rotated, refit, ngrid, row_groups, fb, exponent;
    double pow_e, inv_pow, rot_scale;
    uint64_t key, period;
    const double *grid;
    const double *m;  /* [row_groups / fb, fb g, fb g] feedback matrices (integers: 2^-16 fixed point), or NULL */
} qparams_t;

static inline double pow2i(int k) {  /* exact 2^k, k clamped to the normal range (quantize.py _pow2) */
    if (k < -1022) k = -1022;
    if (k > 1023) k = 1023;
    uint64_t u = (uint64_t)(k + 1023) << 52;
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static inline double f16_to_f64(uint16_t h) { return (double)f16_to_f32(h); }

/* Bodies inlined into each ISA's driver (run_groups_*), so the compiler vectorizes them for that ISA: the same
 * IEEE operations in the same order per element (no FMA, no reassociation), integer sums order-free. */
#define UC_BODY static inline __attribute__((always_inline))

UC_BODY double clampd(double x, double lo, double hi) {  /* torch.clamp: min(max(x, lo), hi) */
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

/* quantize.py _store_scale: binary64 scale -> binary16 significand, exact 2^-e, RNE to binary32 then binary16,
 * clamped to [2^-24, 65504]. */
UC_BODY uint16_t store_scale(double s, double inv_pow) {
    float f = (float)(s * inv_pow);
    if (f > 65504.0f) f = 65504.0f;
    uint16_t h = f32_to_f16(f);
    return (h & 0x7FFFu) == 0 ? (uint16_t)0x0001u : h;  /* maximum(s16, 2^-24): values are >= 0 */
}

/* Load group `gi` (padded element index gi * g) from the source and rotate it. 0: a value is not finite. */
UC_BODY int load_group(const qparams_t *p, const uint8_t *src, Py_ssize_t n, Py_ssize_t gi, double *y) {
    const int g = p->g;
    const Py_ssize_t start = gi * g;
    const int len = start + g <= n ? g : (int)(n - start);
    int finite = 1;
    if (p->dtype == 0) {  /* one loop per dtype: the conversions vectorize */
        const float *f = (const float *)(src + 4 * start);
        for (int j = 0; j < len; j++) y[j] = (double)f[j];
    } else if (p->dtype == 2) {
        const uint16_t *h = (const uint16_t *)(src + 2 * start);
        for (int j = 0; j < len; j++) y[j] = (double)bits_to_f32((uint32_t)h[j] << 16);
    } else {
        const uint16_t *h = (const uint16_t *)(src + 2 * start);
        for (int j = 0; j < len; j++) y[j] = f16_to_f64(h[j]);
    }
    for (int j = len; j < g; j++) y[j] = 0.0;
    for (int j = 0; j < len; j++) finite &= isfinite(y[j]) != 0;
    if (!p->rotated) return finite;
    uint64_t bm[MAX_GROUP / 64];
    group_signs(bm, p->key, (uint64_t)start, g, p->period);
    for (int j = 0; j < g; j++)
        if ((bm[j / 64] >> (j % 64)) & 1u) y[j] = y[j] * -1.0;
    for (int h = 1; h < g; h <<= 1)
        for (int i = 0; i < g; i += h << 1)
            for (int j = i; j < i + h; j++) {
                double a = y[j], b = y[j + h];
                y[j] = a + b;
                y[j + h] = a - b;
            }
    for (int j = 0; j < g; j++) y[j] = y[j] * p->rot_scale;
    return finite;
}

UC_BODY double code_of(double y, double s, double z, double qmax) {
    return clampd(nearbyint(y / s) + z, 0.0, qmax);
}

/* quantize.py _objective: the exact integer squared error of codes from (s, z), int64 with wraparound. */
static int64_t objective_scalar(const double *y, int g, double s, double z, double qmax, double err_scale) {
    const double lim = (double)(1LL << (ERR_BITS + 1));
    uint64_t acc = 0;
    for (int j = 0; j < g; j++) {
        double q = code_of(y[j], s, z, qmax);
        double e = clampd((y[j] - (q - z) * s) * err_scale, -lim, lim);
        acc += (uint64_t)(int64_t)nearbyint(e * e);
    }
    return (int64_t)acc;
}

typedef int64_t (*objective_t)(const double *, int, double, double, double, double);

#ifdef UC_X86
#define T_AVX512 __attribute__((target("avx512f,avx512dq")))
#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* The same steps on 8 binary64 lanes: divide, round, add, clamp, subtract, multiply, subtract, multiply, clamp,
 * square, round are each one IEEE operation per lane (no FMA); the squares (integers below 2^55) convert to
 * int64 exactly and are summed with wraparound. */
T_AVX512 static int64_t objective_avx512(const double *y, int g, double s, double z, double qmax, double err_scale) {
    const __m512d sv = _mm512_set1_pd(s), zv = _mm512_set1_pd(z), qv = _mm512_set1_pd(qmax), zero = _mm512_setzero_pd();
    const __m512d ev = _mm512_set1_pd(err_scale), hi = _mm512_set1_pd((double)(1LL << (ERR_BITS + 1)));
    const __m512d lo = _mm512_set1_pd(-(double)(1LL << (ERR_BITS + 1)));
    __m512i acc = _mm512_setzero_si512();
    for (int j = 0; j < g; j += 8) {
        __m512d yv = _mm512_loadu_pd(y + j);
        __m512d q = _mm512_add_pd(_mm512_roundscale_pd(_mm512_div_pd(yv, sv), RNE), zv);
        q = _mm512_min_pd(_mm512_max_pd(q, zero), qv);
        __m512d e = _mm512_mul_pd(_mm512_sub_pd(yv, _mm512_mul_pd(_mm512_sub_pd(q, zv), sv)), ev);
        e = _mm512_min_pd(_mm512_max_pd(e, lo), hi);
        acc = _mm512_add_epi64(acc, _mm512_cvtpd_epi64(_mm512_roundscale_pd(_mm512_mul_pd(e, e), RNE)));
    }
    return _mm512_reduce_add_epi64(acc);
}
#endif

/* quantize.py _search_block for one group: the binary16 scale and the zero-point (an integer in [0, qmax]). */
UC_BODY void search_group(const qparams_t *p, const double *y, objective_t objective, uint16_t *s16_out,
                          double *z_out) {
    const int g = p->g;
    const double qmax = (double)p->qmax, pow_e = p->pow_e, inv_pow = p->inv_pow;
    double lo = y[0], hi = y[0];
    for (int j = 1; j < g; j++) {
        lo = y[j] < lo ? y[j] : lo;
        hi = y[j] > hi ? y[j] : hi;
    }
    lo = lo > 0.0 ? 0.0 : lo;
    hi = hi < 0.0 ? 0.0 : hi;
    double absmax = -lo > hi ? -lo : hi;
    int e_g;
    (void)frexp(absmax, &e_g);
    const double err_scale = pow2i(ERR_BITS - e_g);
    const int zero_range = hi == lo;
    int64_t best_err = INT64_MAX;
    uint16_t best_s16 = 0x3C00u;
    double best_z = 0.0;
#define CONSIDER(S16, Z)                                                   \
    do {                                                                   \
        double s_ = f16_to_f64(S16) * pow_e;                               \
        int64_t err_ = objective(y, g, s_, (Z), qmax, err_scale);          \
        if (err_ < best_err) { best_err = err_; best_s16 = (S16); best_z = (Z); } \
    } while (0)
    for (int i = 0; i < p->ngrid; i++) {
        double c = p->grid[i], lo_p = lo * c, hi_p = hi * c;
        uint16_t s16 = store_scale((hi_p - lo_p) / qmax, inv_pow);
        if (zero_range) s16 = 0x3C00u;
        double s = f16_to_f64(s16) * pow_e;
        double z = clampd(nearbyint(-lo_p / s), 0.0, qmax);
        CONSIDER(s16, z);
    }
    if (p->refit) {
        int qbits = 0, gbits = 0;
        for (int v = p->qmax; v; v >>= 1) qbits++;
        for (int v = g - 1; v; v >>= 1) gbits++;
        const int f_bits = 61 - qbits - 2 * (gbits > 1 ? gbits : 1);
        const double to_fx = pow2i(f_bits - e_g), from_fx = pow2i(e_g - f_bits), n_t = (double)g;
        int64_t w_fx[MAX_GROUP];
        uint64_t s_w = 0;
        for (int j = 0; j < g; j++) {
            w_fx[j] = (int64_t)nearbyint(y[j] * to_fx);
            s_w += (uint64_t)w_fx[j];
        }
        for (int r = 0; r < p->refit; r++) {
            double s = f16_to_f64(best_s16) * pow_e;
            uint64_t s_q = 0, s_qq = 0, s_qw = 0;
            for (int j = 0; j < g; j++) {
                uint64_t qi = (uint64_t)(int64_t)code_of(y[j], s, best_z, qmax);
                s_q += qi;
                s_qq += qi * qi;
                s_qw += qi * (uint64_t)w_fx[j];
            }
            int64_t num = (int64_t)((uint64_t)g * s_qw - s_q * s_w), den = (int64_t)((uint64_t)g * s_qq - s_q * s_q);
            int valid = den > 0 && !zero_range;
            double a = ((double)num / (valid ? (double)den : 1.0)) * from_fx;
            valid = valid && a > 0.0;
            if (!valid) continue;  /* the reference scores it and never keeps it */
            double c = ((double)(int64_t)s_w * from_fx - a * (double)(int64_t)s_q) / n_t;
            uint16_t s16 = store_scale(a, inv_pow);
            double z0 = nearbyint(-c / (f16_to_f64(s16) * pow_e));
            static const double dz[3] = {0.0, -1.0, 1.0};
            for (int t = 0; t < 3; t++) CONSIDER(s16, clampd(z0 + dz[t], 0.0, qmax));
        }
    }
#undef CONSIDER
    *s16_out = best_s16;
    *z_out = best_z;
}

/* ldlq.py feedback_codes for one feedback block of w = fb g columns (fb groups of a row, each with its scale s[i]
 * and zero-point z[i]; fb = 1 below uc-rht-ldlq/3): errors fed forward through M, in binary64 whose every value is
 * an integer below 2^53 (the reference's bounds), so each step is exact and the order of the sums is free. */
typedef void (*feedback_t)(const double *, int, int, int, const double *, const double *, const double *, uint8_t *);

UC_BODY void feedback_targets(const double *y, int w, int g, const double *s, const double *z, double *uz,
                              double *tgt) {
    const double one = (double)(1 << F_U), shift = (double)(1 << F_M), lim = (double)(1 << 21);
    const double half = one * shift / 2.0;
    for (int j = 0; j < w; j++) {
        const double sj = s[j / g], zq = z[j / g] * one;
        uz[j] = clampd(nearbyint((y[j] / sj) * one), -lim, lim) + zq;
        tgt[j] = uz[j] * shift + half;
    }
}

static void feedback_scalar(const double *y, int w, int g, int qmax, const double *s, const double *z, const double *m,
                            uint8_t *q) {
    const double one = (double)(1 << F_U), inv = 1.0 / (one * (double)(1 << F_M));
    double uz[MAX_BLOCK], tgt[MAX_BLOCK];
    feedback_targets(y, w, g, s, z, uz, tgt);
    for (int k = 0; k < w; k++) {
        double qk = clampd(floor(tgt[k] * inv), 0.0, (double)qmax);
        q[k] = (uint8_t)qk;
        const double e = uz[k] - qk * one;
        const double *row = m + (size_t)k * w;
        for (int j = k + 1; j < w; j++) tgt[j] = tgt[j] + e * row[j];
    }
}

#ifdef UC_X86
/* The rank-1 updates on 8 lanes from the vector holding k + 1 (M is strictly upper triangular: the lanes at or
 * before k add e * 0 to targets already used). */
T_AVX512 static void feedback_avx512(const double *y, int w, int g, int qmax, const double *s, const double *z,
                                     const double *m, uint8_t *q) {
    const double one = (double)(1 << F_U), inv = 1.0 / (one * (double)(1 << F_M));
    _Alignas(64) double uz[MAX_BLOCK], tgt[MAX_BLOCK];
    feedback_targets(y, w, g, s, z, uz, tgt);
    for (int k = 0; k < w; k++) {
        double qk = clampd(floor(tgt[k] * inv), 0.0, (double)qmax);
        q[k] = (uint8_t)qk;
        const __m512d e = _mm512_set1_pd(uz[k] - qk * one);
        const double *row = m + (size_t)k * w;
        for (int j = (k + 1) & ~7; j < w; j += 8)
            _mm512_store_pd(tgt + j, _mm512_add_pd(_mm512_load_pd(tgt + j), _mm512_mul_pd(e, _mm512_loadu_pd(row + j))));
    }
}
#endif

/* ldlq.py feedback_matrix for one block: ``a`` the damped rotated moments (exact int64, as binary64 below 2^53),
 * eliminated from the last column in binary64, elementwise in the reference's order (a multiply, then a subtract:
 * no FMA); ``m`` the strictly upper M in 2^-16 fixed point; ``col`` scratch of ELIM_PANEL * g binary64. The body is
 * inlined per ISA (8 lanes on AVX-512).
 *
 * Blocked by panels of ELIM_PANEL steps, each element still receiving the same updates in the same order: step k
 * sets col_k[i] = a[i][k] / max(a[k][k], 1) for i < k and a[i][j] -= col_k[i] * a[k][j] for i, j < k. Within a panel
 * [lo, hi) the steps run one by one on the elements they read later (rows [lo, k) and columns [lo, k)); the elements
 * left of and above the panel (i, j < lo) are read by no step of the panel, so their updates wait until its end
 * and are applied row by row, the panel's steps in order (k = hi - 1 down to lo), with the values a[k][j] those
 * steps would have read: row k is final for step k once the steps after it ran. One row then meets ELIM_PANEL
 * updates while it is in cache, instead of the whole trailing matrix streaming from memory once per step. */
#define ELIM_PANEL 16

UC_BODY void eliminate_body(double *a, int g, double *m, double *col, double lim) {
    memset(m, 0, sizeof(double) * (size_t)g * g);
    for (int hi = g; hi > 1;) {
        const int lo = hi - ELIM_PANEL > 1 ? hi - ELIM_PANEL : 1;
        for (int k = hi - 1; k >= lo; k--) {
            double piv = a[(size_t)k * g + k];
            piv = piv < 1.0 ? 1.0 : piv;
            double *ck = col + (size_t)(hi - 1 - k) * g;
            for (int i = 0; i < k; i++) {
                ck[i] = a[(size_t)i * g + k] / piv;
                m[(size_t)i * g + k] = ck[i];
            }
            const double *restrict rk = a + (size_t)k * g;
            for (int i = 0; i < k; i++) {  /* rows above k: no overlap with row k */
                double *restrict ri = a + (size_t)i * g;
                const double c = ck[i];
                const int j0 = i >= lo ? 0 : lo;  /* rows above the panel: only its columns now */
                for (int j = j0; j < k; j++) ri[j] = ri[j] - c * rk[j];
            }
        }
        for (int i = 0; i < lo; i++) {  /* the deferred updates of a[i][j], i, j < lo, in step order */
            double *restrict ri = a + (size_t)i * g;
            for (int k = hi - 1; k >= lo; k--) {
                const double c = col[(size_t)(hi - 1 - k) * g + i];
                const double *restrict rk = a + (size_t)k * g;
                for (int j = 0; j < lo; j++) ri[j] = ri[j] - c * rk[j];
            }
        }
        hi = lo;
    }
    for (size_t i = 0; i < (size_t)g * g; i++)  /* NaN (an indefinite, hostile block): no feedback, as ldlq.py */
        m[i] = isnan(m[i]) ? 0.0 : clampd(nearbyint(m[i] * (double)(1 << F_M)), -lim, lim);
}

typedef void (*eliminate_t)(double *, int, double *, double *, double);
static void eliminate_scalar(double *a, int g, double *m, double *col, double lim) { eliminate_body(a, g, m, col, lim); }
#ifdef UC_X86
T_AVX512 static void eliminate_avx512(double *a, int g, double *m, double *col, double lim) {
    eliminate_body(a, g, m, col, lim);
}
#endif
static eliminate_t eliminate_block = eliminate_scalar;

/* The Walsh-Hadamard transform of each g-wide group of each row of an n x n matrix; exact integers. */
static void fwht_rows_i64(int64_t *a, int n, int g) {
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c += g) {
            int64_t *v = a + (size_t)r * n + c;
            for (int h = 1; h < g; h <<= 1)
                for (int i = 0; i < g; i += h << 1)
                    for (int j = i; j < i + h; j++) {
                        int64_t x = v[j], w = v[j + h];
                        v[j] = x + w;
                        v[j + h] = x - w;
                    }
        }
}

UC_BODY void pack_group(const uint8_t *q, int g, int bits, uint8_t *out) {
    for (int c8 = 0; c8 < g; c8 += 8, out += bits) {
        uint64_t word = 0;
        for (int j = 0; j < 8; j++) word |= (uint64_t)q[c8 + j] << (bits * j);
        memcpy(out, &word, (size_t)bits);  /* little-endian host (checked in Python) */
    }
}


/* The per-group work over a run of groups, the bodies inlined and compiled for each ISA. */
UC_BODY int range_body(const qparams_t *p, const uint8_t *src, Py_ssize_t n, Py_ssize_t g0, Py_ssize_t g1,
                       double *range_max) {
    double y[MAX_GROUP];
    int finite = 1;
    for (Py_ssize_t gi = g0; gi < g1; gi++) {
        finite &= load_group(p, src, n, gi, y);
        double lo = y[0], hi = y[0];
        for (int j = 1; j < p->g; j++) {
            lo = y[j] < lo ? y[j] : lo;
            hi = y[j] > hi ? y[j] : hi;
        }
        lo = lo > 0.0 ? 0.0 : lo;
        hi = hi < 0.0 ? 0.0 : hi;
        double r = hi - lo;
        *range_max = r > *range_max ? r : *range_max;
    }
    return finite;
}

UC_BODY int run_body(const qparams_t *p, const uint8_t *src, Py_ssize_t n, Py_ssize_t g0, Py_ssize_t g1, uint8_t *cp,
                     uint16_t *sp, uint8_t *zp, objective_t objective, feedback_t feedback) {
    _Alignas(64) double y[MAX_BLOCK];
    uint8_t q[MAX_BLOCK];
    double s[MAX_BLOCK / 8], z[MAX_BLOCK / 8];
    int finite = 1;
    const int g = p->g, fb = p->m ? p->fb : 1, w = fb * g;
    const size_t group_bytes = (size_t)g / 8 * p->bits;
    for (Py_ssize_t b0 = g0; b0 < g1; b0 += fb) {  /* a feedback block of fb groups (runs are whole blocks) */
        for (int i = 0; i < fb; i++) {
            uint16_t s16;
            finite &= load_group(p, src, n, b0 + i, y + (size_t)i * g);
            search_group(p, y + (size_t)i * g, objective, &s16, &z[i]);
            s[i] = f16_to_f64(s16) * p->pow_e;
            sp[b0 - g0 + i] = s16;
            zp[b0 - g0 + i] = (uint8_t)z[i];
        }
        if (p->m) {
            feedback(y, w, g, p->qmax, s, z, p->m + (size_t)((b0 % p->row_groups) / fb) * w * w, q);
        } else {
            for (int j = 0; j < g; j++) q[j] = (uint8_t)code_of(y[j], s[0], z[0], (double)p->qmax);
        }
        for (int i = 0; i < fb; i++) pack_group(q + (size_t)i * g, g, p->bits, cp + (size_t)(b0 - g0 + i) * group_bytes);
    }
    return finite;
}

typedef int (*range_t)(const qparams_t *, const uint8_t *, Py_ssize_t, Py_ssize_t, Py_ssize_t, double *);
typedef int (*run_t)(const qparams_t *, const uint8_t *, Py_ssize_t, Py_ssize_t, Py_ssize_t, uint8_t *, uint16_t *,
                     uint8_t *);

static int range_scalar(const qparams_t *p, const uint8_t *src, Py_ssize_t n, Py_ssize_t g0, Py_ssize_t g1, double *r) {
    return range_body(p, src, n, g0, g1, r);
}

static int run_scalar(const qparams_t *p, const uint8_t *src, Py_ssize_t n, Py_ssize_t g0, Py_ssize_t g1, uint8_t *cp,
                      uint16_t *sp, uint8_t *zp) {
    return run_body(p, src, n, g0, g1, cp, sp, zp, objective_scalar, feedback_scalar);
}

#ifdef UC_X86
T_AVX512 static int range_avx512(const qparams_t *p, const uint8_t *src, Py_ssize_t n, Py_ssize_t g0, Py_ssize_t g1,
                                 double *r) {
    return range_body(p, src, n, g0, g1, r);
}

T_AVX512 static int run_avx512(const qparams_t *p, const uint8_t *src, Py_ssize_t n, Py_ssize_t g0, Py_ssize_t g1,
                               uint8_t *cp, uint16_t *sp, uint8_t *zp) {
    return run_body(p, src, n, g0, g1, cp, sp, zp, objective_avx512, feedback_avx512);
}
#endif

static range_t range_groups = range_scalar;
static run_t run_groups = run_scalar;

/* ---------------------------------------------------------------- Python entry points */

typedef struct {
    Py_buffer src, grid, m;
    int have_m;
} buffers_t;

static void release(buffers_t *b) {
    PyBuffer_Release(&b->src);
    if (b->grid.obj) PyBuffer_Release(&b->grid);
    if (b->have_m) PyBuffer_Release(&b->m);
}

/* Parameters shared by both entry points; 0 with an exception set when one is out of range. */
static int check_common(qparams_t *p, Py_ssize_t n, Py_ssize_t g0, Py_ssize_t g1, Py_ssize_t src_len) {
    if (p->g < 8 || p->g > MAX_GROUP || p->g % 8) {
        PyErr_Format(PyExc_ValueError, "group size %d: a multiple of 8 in [8, %d]", p->g, MAX_GROUP);
        return 0;
    }
    if (p->dtype < 0 || p->dtype > 2) {
        PyErr_Format(PyExc_ValueError, "dtype %d: 0 (F32), 1 (F16) or 2 (BF16)", p->dtype);
        return 0;
    }
    if (n < 0 || g0 < 0 || g1 < g0) {
        PyErr_SetString(PyExc_ValueError, "sizes: n >= 0 and 0 <= first group <= last group");
        return 0;
    }
    Py_ssize_t groups, need;
    if (__builtin_add_overflow(n, (Py_ssize_t)p->g - 1, &groups) || __builtin_mul_overflow(n, p->dtype == 0 ? 4 : 2, &need)) {
        PyErr_SetString(PyExc_OverflowError, "n: too large");
        return 0;
    }
    groups /= p->g;
    if (g1 > groups) {
        PyErr_Format(PyExc_ValueError, "groups [%zd, %zd) beyond the tensor's %zd", g0, g1, groups);
        return 0;
    }
    if (src_len < need) {
        PyErr_Format(PyExc_ValueError, "src has %zd bytes, %zd elements need %zd", src_len, n, need);
        return 0;
    }
    if (p->rotated) {
        p->k = 0;
        while ((1 << p->k) < p->g) p->k++;
        if ((1 << p->k) != p->g) {
            PyErr_Format(PyExc_ValueError, "rotated: group size %d is not a power of two", p->g);
            return 0;
        }
        p->rot_scale = ldexp(1.0, -(p->k / 2));
    } else {
        p->rot_scale = 1.0;
    }
    return 1;
}

/* group_ranges(src, dtype, n, g, first, last, rotated, key, period) -> (largest hi - lo, all finite):
 * pass 1 of quantize.py quantize_tensor over groups [first, last). */
static PyObject *group_ranges(PyObject *self, PyObject *args) {
    qparams_t p;
    memset(&p, 0, sizeof p);
    buffers_t b;
    memset(&b, 0, sizeof b);
    Py_ssize_t n, g0, g1;
    unsigned long long key, period;
    if (!PyArg_ParseTuple(args, "y*ininnpKK", &b.src, &p.dtype, &n, &p.g, &g0, &g1, &p.rotated, &key, &period))
        return NULL;
    p.key = key;
    p.period = period;
    if (!check_common(&p, n, g0, g1, b.src.len)) {
        release(&b);
        return NULL;
    }
    double range_max = 0.0;
    int finite = 1;
    Py_BEGIN_ALLOW_THREADS
    finite = range_groups(&p, (const uint8_t *)b.src.buf, n, g0, g1, &range_max);
    Py_END_ALLOW_THREADS
    release(&b);
    return Py_BuildValue("(dO)", range_max, finite ? Py_True : Py_False);
}

/* quantize_groups(src, dtype, n, g, first, last, rotated, key, period, bits, exponent, grid, refit, m, row_groups,
 *                 fb, codes, scales, zeros): pass 2 over groups [first, last) into the writable buffers codes
 * ((last - first) * g * bits / 8 bytes), scales (uint16, last - first) and zeros (uint8, last - first). ``grid``:
 * binary64 clipping fractions; ``m``: None, or float64 [row_groups / fb, fb g, fb g] feedback matrices over blocks
 * of fb groups (group i is in block (i % row_groups) / fb; first and last are multiples of fb). */
static PyObject *quantize_groups(PyObject *self, PyObject *args) {
    qparams_t p;
    memset(&p, 0, sizeof p);
    buffers_t b;
    memset(&b, 0, sizeof b);
    Py_buffer codes, scales, zeros;
    PyObject *m_obj;
    Py_ssize_t n, g0, g1;
    unsigned long long key, period;
    if (!PyArg_ParseTuple(args, "y*ininnpKKiiy*iOiiw*w*w*", &b.src, &p.dtype, &n, &p.g, &g0, &g1, &p.rotated, &key,
                          &period, &p.bits, &p.exponent, &b.grid, &p.refit, &m_obj, &p.row_groups, &p.fb, &codes,
                          &scales, &zeros))
        return NULL;
    p.key = key;
    p.period = period;
    PyObject *ret = NULL;
    if (m_obj != Py_None) {
        if (PyObject_GetBuffer(m_obj, &b.m, PyBUF_SIMPLE) < 0) goto done;
        b.have_m = 1;
    }
    if (!check_common(&p, n, g0, g1, b.src.len)) goto done;
    if (p.bits < 2 || p.bits > 8) {
        PyErr_Format(PyExc_ValueError, "bits %d: in [2, 8]", p.bits);
        goto done;
    }
    if (p.exponent < -200 || p.exponent > 200 || p.refit < 0 || p.refit > 16) {
        PyErr_SetString(PyExc_ValueError, "exponent in [-200, 200] and refit rounds in [0, 16]");
        goto done;
    }
    p.ngrid = (int)(b.grid.len / (Py_ssize_t)sizeof(double));
    if (p.ngrid < 1 || p.ngrid > MAX_GRID || b.grid.len % (Py_ssize_t)sizeof(double)) {
        PyErr_Format(PyExc_ValueError, "grid: 1 to %d binary64 values", MAX_GRID);
        goto done;
    }
    p.grid = (const double *)b.grid.buf;
    p.qmax = (1 << p.bits) - 1;
    p.pow_e = ldexp(1.0, p.exponent);
    p.inv_pow = ldexp(1.0, -p.exponent);
    Py_ssize_t ng = g1 - g0;
    if (b.have_m) {
        Py_ssize_t want;
        if (p.row_groups < 1 || p.fb < 1 || p.fb > MAX_BLOCK / p.g || p.row_groups % p.fb || g0 % p.fb || g1 % p.fb ||
            __builtin_mul_overflow((Py_ssize_t)p.row_groups * p.g, (Py_ssize_t)p.g * p.fb * 8, &want) ||
            b.m.len != want) {
            PyErr_Format(PyExc_ValueError,
                         "m: float64 [row_groups / fb, fb %d, fb %d], fb in [1, %d] dividing row_groups, first and "
                         "last multiples of fb", p.g, p.g, MAX_BLOCK / p.g);
            goto done;
        }
        p.m = (const double *)b.m.buf;
    }
    if (codes.len != ng * p.g / 8 * p.bits || scales.len != 2 * ng || zeros.len != ng) {
        PyErr_Format(PyExc_ValueError, "output buffers: %zd code bytes, %zd scale bytes and %zd zero bytes expected",
                     ng * p.g / 8 * p.bits, 2 * ng, ng);
        goto done;
    }
    int finite = 1;
    Py_BEGIN_ALLOW_THREADS
    finite = run_groups(&p, (const uint8_t *)b.src.buf, n, g0, g1, (uint8_t *)codes.buf, (uint16_t *)scales.buf,
                        (uint8_t *)zeros.buf);
    Py_END_ALLOW_THREADS
    if (!finite) {
        PyErr_SetString(PyExc_ValueError, "a value is not finite");
        goto done;
    }
    ret = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&codes);
    PyBuffer_Release(&scales);
    PyBuffer_Release(&zeros);
    release(&b);
    return ret;
}


/* ---------------------------------------------------------------- exact measures of a reconstruction */

#define MEASURE_CHUNK 2048

/* Elements [i, i + len) of a raw tensor as binary64 (exact), one loop per dtype so it vectorizes. */
UC_BODY void to_f64(int dtype, const uint8_t *src, Py_ssize_t i, int len, double *out) {
    if (dtype == 0) {
        const float *f = (const float *)(src + 4 * i);
        for (int j = 0; j < len; j++) out[j] = (double)f[j];
    } else if (dtype == 2) {
        const uint16_t *h = (const uint16_t *)(src + 2 * i);
        for (int j = 0; j < len; j++) out[j] = (double)bits_to_f32((uint32_t)h[j] << 16);
    } else {
        const uint16_t *h = (const uint16_t *)(src + 2 * i);
        for (int j = 0; j < len; j++) out[j] = f16_to_f64(h[j]);
    }
}

typedef struct {
    const uint8_t *a, *b;  /* b may be NULL: zeros */
    int dtype;
    Py_ssize_t start, stop;
} pair_t;

/* a - b over a chunk (binary64, one rounding each), or a itself without b. */
UC_BODY void diff_chunk(const pair_t *p, Py_ssize_t i, int len, double *d, double *t) {
    to_f64(p->dtype, p->a, i, len, d);
    if (p->b) {
        to_f64(p->dtype, p->b, i, len, t);
        for (int j = 0; j < len; j++) d[j] = d[j] - t[j];
    }
}

UC_BODY double amax_body(const pair_t *p) {
    double d[MEASURE_CHUNK], t[MEASURE_CHUNK], m = 0.0;
    for (Py_ssize_t i = p->start; i < p->stop; i += MEASURE_CHUNK) {
        int len = p->stop - i < MEASURE_CHUNK ? (int)(p->stop - i) : MEASURE_CHUNK;
        diff_chunk(p, i, len, d, t);
        for (int j = 0; j < len; j++) {
            double v = fabs(d[j]);
            m = v > m ? v : m;
        }
    }
    return m;
}

/* round((a - b) 2^k) into int8 and the sum of squares; 0 when a value leaves [-127, 127]. */
UC_BODY int scaled_body(const pair_t *p, double f, int8_t *out, int64_t *squares) {
    double d[MEASURE_CHUNK], t[MEASURE_CHUNK];
    int64_t acc = 0;
    int ok = 1;
    for (Py_ssize_t i = p->start; i < p->stop; i += MEASURE_CHUNK) {
        int len = p->stop - i < MEASURE_CHUNK ? (int)(p->stop - i) : MEASURE_CHUNK;
        diff_chunk(p, i, len, d, t);
        for (int j = 0; j < len; j++) {
            double v = nearbyint(d[j] * f);
            ok &= v >= -127.0 && v <= 127.0;
            v = v < -127.0 ? 0.0 : (v > 127.0 ? 0.0 : v);
            out[i - p->start + j] = (int8_t)v;
            acc += (int64_t)v * (int64_t)v;
        }
    }
    *squares = acc;
    return ok;
}

/* quality.py relative_error_ppm's sums: round(((w s) - (r s))^2) and round((w s)^2), int64 with wraparound. */
UC_BODY void error_body(const pair_t *p, double scale, uint64_t *num, uint64_t *den) {
    double a[MEASURE_CHUNK], r[MEASURE_CHUNK];
    uint64_t nu = 0, de = 0;
    for (Py_ssize_t i = p->start; i < p->stop; i += MEASURE_CHUNK) {
        int len = p->stop - i < MEASURE_CHUNK ? (int)(p->stop - i) : MEASURE_CHUNK;
        to_f64(p->dtype, p->a, i, len, a);
        to_f64(p->dtype, p->b, i, len, r);
        for (int j = 0; j < len; j++) {
            double w = a[j] * scale, d = w - r[j] * scale;
            nu += (uint64_t)(int64_t)nearbyint(d * d);
            de += (uint64_t)(int64_t)nearbyint(w * w);
        }
    }
    *num = nu;
    *den = de;
}

/* The moments-weighted energy of rows [r0, r1) (measure.py Energy.of): the sum over those rows and the w-wide
 * blocks of their columns [a, a + cols) of v_b H_b v_b^T, in integers. v: int8 [rows, stride]; h: int16
 * [cols / w, w, w]. |v H| partial sums stay in int32 for 256 terms (|v h| <= 2^22), then int64; a block's sum is
 * below 2^51 (w <= 2048) and the total is kept in 128 bits. */
#define ENERGY_RUN 256
typedef struct {
    const int8_t *v;
    const int16_t *h;
    Py_ssize_t stride, a, cols, r0, r1;
    int w;
} energy_t;

UC_BODY __int128 energy_body(const energy_t *e) {
    const int w = e->w;
    int16_t x[MAX_BLOCK];
    __int128 total = 0;
    for (Py_ssize_t r = e->r0; r < e->r1; r++) {
        const int8_t *row = e->v + r * e->stride + e->a;
        for (Py_ssize_t b = 0; b < e->cols / w; b++) {
            const int16_t *hb = e->h + b * (Py_ssize_t)w * w;
            for (int j = 0; j < w; j++) x[j] = row[b * w + j];
            int64_t block = 0;
            for (int i = 0; i < w; i++) {  /* (H x)_i in int32 over ENERGY_RUN terms at a time, then int64 */
                const int16_t *hi = hb + (Py_ssize_t)i * w;
                int64_t u = 0;
                for (int j0 = 0; j0 < w; j0 += ENERGY_RUN) {
                    int j1 = j0 + ENERGY_RUN < w ? j0 + ENERGY_RUN : w;
                    int32_t s = 0;
                    for (int j = j0; j < j1; j++) s += (int32_t)hi[j] * (int32_t)x[j];
                    u += s;
                }
                block += (int64_t)x[i] * u;
            }
            total += block;
        }
    }
    return total;
}

typedef struct {
    double (*amax)(const pair_t *);
    int (*scaled)(const pair_t *, double, int8_t *, int64_t *);
    void (*error)(const pair_t *, double, uint64_t *, uint64_t *);
    __int128 (*energy)(const energy_t *);
} measures_t;

static double amax_scalar(const pair_t *p) { return amax_body(p); }
static int scaled_scalar(const pair_t *p, double f, int8_t *o, int64_t *s) { return scaled_body(p, f, o, s); }
static void error_scalar(const pair_t *p, double sc, uint64_t *n, uint64_t *d) { error_body(p, sc, n, d); }
static __int128 energy_scalar(const energy_t *e) { return energy_body(e); }
static const measures_t measures_scalar = {amax_scalar, scaled_scalar, error_scalar, energy_scalar};
#ifdef UC_X86
T_AVX512 static double amax_avx512(const pair_t *p) { return amax_body(p); }
T_AVX512 static int scaled_avx512(const pair_t *p, double f, int8_t *o, int64_t *s) { return scaled_body(p, f, o, s); }
T_AVX512 static void error_avx512(const pair_t *p, double sc, uint64_t *n, uint64_t *d) { error_body(p, sc, n, d); }
T_AVX512 static __int128 energy_avx512(const energy_t *e) { return energy_body(e); }
static const measures_t measures_avx512 = {amax_avx512, scaled_avx512, error_avx512, energy_avx512};
#endif
static const measures_t *measures = &measures_scalar;

/* (a, b, dtype, start, stop): a and b the raw bytes of two tensors of one dtype (b may be None: zeros). */
static int parse_pair(PyObject *args, const char *fmt, Py_buffer *a, Py_buffer *b, pair_t *p, void *x1, void *x2) {
    PyObject *b_obj;
    memset(p, 0, sizeof *p);
    memset(b, 0, sizeof *b);
    if (!PyArg_ParseTuple(args, fmt, a, &b_obj, &p->dtype, &p->start, &p->stop, x1, x2)) return 0;
    if (b_obj != Py_None && PyObject_GetBuffer(b_obj, b, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(a);
        return 0;
    }
    Py_ssize_t size = p->dtype == 0 ? 4 : 2, need;
    if (p->dtype < 0 || p->dtype > 2 || p->start < 0 || p->stop < p->start ||
        __builtin_mul_overflow(p->stop, size, &need) || a->len < need || (b->obj && b->len != a->len) ||
        (uintptr_t)a->buf % (uintptr_t)size || (b->obj && (uintptr_t)b->buf % (uintptr_t)size)) {
        PyErr_SetString(PyExc_ValueError,
                        "a, b: aligned raw tensors of one dtype (0 F32, 1 F16, 2 BF16) covering [start, stop)");
        PyBuffer_Release(a);
        if (b->obj) PyBuffer_Release(b);
        return 0;
    }
    p->a = (const uint8_t *)a->buf;
    p->b = b->obj ? (const uint8_t *)b->buf : NULL;
    return 1;
}

static void release_pair(Py_buffer *a, Py_buffer *b) {
    PyBuffer_Release(a);
    if (b->obj) PyBuffer_Release(b);
}

/* diff_amax(a, b, dtype, start, stop) -> max |a - b| over [start, stop) in binary64 (allocate.py _scaled). */
static PyObject *diff_amax(PyObject *self, PyObject *args) {
    pair_t p;
    Py_buffer a, b;
    if (!parse_pair(args, "y*Oinn", &a, &b, &p, NULL, NULL)) return NULL;
    double m;
    Py_BEGIN_ALLOW_THREADS
    m = measures->amax(&p);
    Py_END_ALLOW_THREADS
    release_pair(&a, &b);
    return PyFloat_FromDouble(m);
}

/* diff_scaled(a, b, dtype, start, stop, k, out) -> sum of squares: out[i - start] = round((a_i - b_i) 2^k) as
 * int8 (|.| <= 64 when 2^k max|a - b| < 2^6, allocate.py _scaled), and the exact int64 sum of their squares. */
static PyObject *diff_scaled(PyObject *self, PyObject *args) {
    pair_t p;
    Py_buffer a, b, out;
    int k;
    if (!parse_pair(args, "y*Oinniw*", &a, &b, &p, &k, &out)) return NULL;
    if (out.len != p.stop - p.start || k < -1074 || k > 1023) {
        PyErr_SetString(PyExc_ValueError, "out: int8 of stop - start values; k a binary64 exponent");
        PyBuffer_Release(&out);
        release_pair(&a, &b);
        return NULL;
    }
    const double f = ldexp(1.0, k);
    int64_t squares = 0;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = measures->scaled(&p, f, (int8_t *)out.buf, &squares);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&out);
    release_pair(&a, &b);
    if (!ok) return PyErr_Format(PyExc_ValueError, "k = %d: a scaled value leaves int8", k);
    return PyLong_FromLongLong(squares);
}

/* error_sums(w, r, dtype, start, stop, scale) -> (sum round(((w s) - (r s))^2), sum round((w s)^2)) in int64:
 * quality.py relative_error_ppm. */
static PyObject *error_sums(PyObject *self, PyObject *args) {
    pair_t p;
    Py_buffer a, b;
    double scale;
    if (!parse_pair(args, "y*Oinnd", &a, &b, &p, &scale, NULL)) return NULL;
    if (!p.b) {
        release_pair(&a, &b);
        PyErr_SetString(PyExc_ValueError, "error_sums needs the reconstruction");
        return NULL;
    }
    uint64_t num = 0, den = 0;
    Py_BEGIN_ALLOW_THREADS
    measures->error(&p, scale, &num, &den);
    Py_END_ALLOW_THREADS
    release_pair(&a, &b);
    return Py_BuildValue("(LL)", (long long)(int64_t)num, (long long)(int64_t)den);
}

/* block_energy(v, stride, a, cols, h, w, r0, r1) -> int: measure.py Energy.of over rows [r0, r1), exactly
 * (energy_body). v: int8 [rows, stride] bytes; h: int16 [cols / w, w, w] bytes. */
static PyObject *block_energy(PyObject *self, PyObject *args) {
    Py_buffer vb, hb;
    energy_t e;
    if (!PyArg_ParseTuple(args, "y*nnny*inn", &vb, &e.stride, &e.a, &e.cols, &hb, &e.w, &e.r0, &e.r1)) return NULL;
    Py_ssize_t need_v, need_h;
    int bad = e.w < 1 || e.w > MAX_BLOCK || e.stride < 1 || e.a < 0 || e.cols < 0 || e.cols % e.w ||
              e.a > e.stride - e.cols || e.r0 < 0 || e.r1 < e.r0 || __builtin_mul_overflow(e.r1, e.stride, &need_v) ||
              vb.len < need_v || __builtin_mul_overflow(e.cols, (Py_ssize_t)e.w * 2, &need_h) || hb.len != need_h ||
              (uintptr_t)hb.buf % 2;
    if (bad) {
        PyBuffer_Release(&vb);
        PyBuffer_Release(&hb);
        PyErr_SetString(PyExc_ValueError,
                        "block_energy: v int8 [rows >= r1, stride], columns [a, a + cols) inside a row, cols a "
                        "multiple of w <= 2048, h int16 [cols / w, w, w]");
        return NULL;
    }
    e.v = (const int8_t *)vb.buf;
    e.h = (const int16_t *)hb.buf;
    __int128 total;
    Py_BEGIN_ALLOW_THREADS
    total = measures->energy(&e);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&vb);
    PyBuffer_Release(&hb);
    unsigned __int128 mag = total < 0 ? -(unsigned __int128)total : (unsigned __int128)total;
    PyObject *hi = PyLong_FromUnsignedLongLong((unsigned long long)(mag >> 64));
    PyObject *lo = PyLong_FromUnsignedLongLong((unsigned long long)mag);
    PyObject *shift = PyLong_FromLong(64);
    PyObject *up = hi && shift ? PyNumber_Lshift(hi, shift) : NULL;
    PyObject *out = up && lo ? PyNumber_Or(up, lo) : NULL;
    Py_XDECREF(hi);
    Py_XDECREF(lo);
    Py_XDECREF(shift);
    Py_XDECREF(up);
    if (out && total < 0) {
        PyObject *neg = PyNumber_Negative(out);
        Py_DECREF(out);
        out = neg;
    }
    return out;
}

/* feedback_matrices(m16, w, g, key, period) -> float64 [blocks, n, n], n = max(w, g): ldlq.py rotated_hessian +
 * feedback_matrix. ``m16``: int16 [blocks, w(w+1)/2] upper triangles; w divides g (one block, repeated g / w times
 * along the diagonal) or is a multiple of g up to MAX_BLOCK (uc-rht-ldlq/3: one block per w columns, each g-wide
 * group rotated, damped by at least g isqrt(w), M clamped at 2^19 above 1024 columns); the row-shared signs of
 * element b*n + j (modulo ``period``). */
static PyObject *feedback_matrices(PyObject *self, PyObject *args) {
    Py_buffer mb;
    int w, g;
    unsigned long long key, period;
    if (!PyArg_ParseTuple(args, "y*iiKK", &mb, &w, &g, &key, &period)) return NULL;
    Py_ssize_t tri = (Py_ssize_t)w * (w + 1) / 2;
    int shape_ok = w >= 1 && (w <= g ? g % w == 0 : w % g == 0 && w <= MAX_BLOCK);
    if (g < 8 || g > MAX_GROUP || (g & (g - 1)) || !shape_ok || mb.len % (2 * tri) || mb.len == 0) {
        PyBuffer_Release(&mb);
        return PyErr_Format(PyExc_ValueError,
                            "m16: int16 [blocks, w(w+1)/2] with w dividing g or a multiple of g up to %d (w %d, g %d)",
                            MAX_BLOCK, w, g);
    }
    Py_ssize_t nw = mb.len / (2 * tri), nb = w < g ? 1 : nw;
    if (w < g && nw != 1) {
        PyBuffer_Release(&mb);
        return PyErr_Format(PyExc_ValueError, "m16: one block when w (%d) < g (%d)", w, g);
    }
    const int n = w > g ? w : g;
    const size_t nn = (size_t)n * n;
    PyObject *out = PyBytes_FromStringAndSize(NULL, nb * (Py_ssize_t)nn * (Py_ssize_t)sizeof(double));
    int64_t *a = PyMem_Malloc(sizeof(int64_t) * nn);
    double *ad = PyMem_Malloc(sizeof(double) * nn), *col = PyMem_Malloc(sizeof(double) * ELIM_PANEL * (size_t)n);
    if (!out || !a || !ad || !col) {
        Py_XDECREF(out);
        PyMem_Free(a);
        PyMem_Free(ad);
        PyMem_Free(col);
        PyBuffer_Release(&mb);
        return PyErr_NoMemory();
    }
    double *m = (double *)PyBytes_AS_STRING(out);
    const int16_t *m16 = (const int16_t *)mb.buf;
    int64_t floor_lam = 0;  /* uc-rht-ldlq/3's damping floor g isqrt(n) */
    if (n > g) {
        int64_t r = (int64_t)sqrt((double)n);
        while (r * r > n) r--;
        while ((r + 1) * (r + 1) <= n) r++;
        floor_lam = (int64_t)g * r;
    }
    const double lim = n <= 1024 ? (double)(1 << 20) : (double)(1 << 19);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t b = 0; b < nb; b++) {
        memset(a, 0, sizeof(int64_t) * nn);
        const int16_t *t = m16 + (w < g ? 0 : b) * tri;
        for (int r = 0; r < n; r += w) {  /* the block (repeated g / w times when w < g), symmetric */
            Py_ssize_t idx = 0;
            for (int i = 0; i < w; i++)
                for (int j = i; j < w; j++, idx++) {
                    int16_t v16;
                    memcpy(&v16, t + idx, 2);
                    a[(size_t)(r + i) * n + r + j] = a[(size_t)(r + j) * n + r + i] = v16;
                }
        }
        uint64_t bm[MAX_BLOCK / 64];
        group_signs(bm, key, (uint64_t)b * (uint64_t)n, n, period);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (((bm[i / 64] >> (i % 64)) ^ (bm[j / 64] >> (j % 64))) & 1u) a[(size_t)i * n + j] = -a[(size_t)i * n + j];
        fwht_rows_i64(a, n, g);
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) {
                int64_t x = a[(size_t)i * n + j];
                a[(size_t)i * n + j] = a[(size_t)j * n + i];
                a[(size_t)j * n + i] = x;
            }
        fwht_rows_i64(a, n, g);
        int64_t trace = 0;
        for (int i = 0; i < n; i++) trace += a[(size_t)i * n + i];
        int64_t d = 100LL * n, lam = trace / d - (trace % d < 0) + 1;  /* floor division, as torch's // */
        lam = lam < floor_lam ? floor_lam : lam;
        for (int i = 0; i < n; i++) a[(size_t)i * n + i] += lam;
        for (size_t i = 0; i < nn; i++) ad[i] = (double)a[i];
        eliminate_block(ad, n, m + (size_t)b * nn, col, lim);
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(a);
    PyMem_Free(ad);
    PyMem_Free(col);
    PyBuffer_Release(&mb);
    return out;
}

/* ldlq.py feedback_matrix for blocks of any width (uc-rht-ldlq/3's feedback over several groups): ``a`` the damped
 * rotated moments as binary64 [nb, w, w] (exact integers, rotated and damped by the reference), eliminated as in
 * eliminate_block; returns M [nb, w, w] in 2^-16 fixed point, clamped to +-lim; w at most MAX_BLOCK. */
static PyObject *eliminate(PyObject *self, PyObject *args) {
    Py_buffer ab;
    int w;
    double lim;
    if (!PyArg_ParseTuple(args, "y*id", &ab, &w, &lim)) return NULL;
    if (w < 1 || w > MAX_BLOCK) {
        PyBuffer_Release(&ab);
        return PyErr_Format(PyExc_ValueError, "a: binary64 [blocks, w, w] with w in [1, %d] (w %d)", MAX_BLOCK, w);
    }
    Py_ssize_t each = (Py_ssize_t)w * w * (Py_ssize_t)sizeof(double);
    if (ab.len % each || ab.len == 0) {
        PyBuffer_Release(&ab);
        return PyErr_Format(PyExc_ValueError, "a: binary64 [blocks, w, w] (w %d)", w);
    }
    Py_ssize_t nb = ab.len / each;
    PyObject *out = PyBytes_FromStringAndSize(NULL, ab.len);
    double *a = PyMem_Malloc((size_t)each), *col = PyMem_Malloc(sizeof(double) * ELIM_PANEL * (size_t)w);
    if (!out || !a || !col) {
        Py_XDECREF(out);
        PyMem_Free(a);
        PyMem_Free(col);
        PyBuffer_Release(&ab);
        return PyErr_NoMemory();
    }
    double *m = (double *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t b = 0; b < nb; b++) {
        memcpy(a, (const char *)ab.buf + b * each, (size_t)each);
        eliminate_block(a, w, m + (size_t)b * w * w, col, lim);
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(a);
    PyMem_Free(col);
    PyBuffer_Release(&ab);
    return out;
}

enum { ISA_SCALAR, ISA_AVX512, ISA_COUNT };
static const char *isa_names[] = {"scalar", "avx512"};
static int isa_current = ISA_SCALAR;

static int isa_supported(int isa) {
    if (isa == ISA_SCALAR) return 1;
#ifdef UC_X86
    if (isa == ISA_AVX512) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
#endif
    return 0;
}

static void use_isa(int isa) {
    isa_current = isa;
#ifdef UC_X86
    range_groups = isa == ISA_AVX512 ? range_avx512 : range_scalar;
    run_groups = isa == ISA_AVX512 ? run_avx512 : run_scalar;
    eliminate_block = isa == ISA_AVX512 ? eliminate_avx512 : eliminate_scalar;
    measures = isa == ISA_AVX512 ? &measures_avx512 : &measures_scalar;
#else
    range_groups = range_scalar;
    run_groups = run_scalar;
#endif
}

static PyObject *set_isa(PyObject *self, PyObject *arg) {
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name) return NULL;
    for (int i = 0; i < ISA_COUNT; i++)
        if (!strcmp(name, isa_names[i])) {
            if (!isa_supported(i)) return PyErr_Format(PyExc_ValueError, "set_isa: this CPU lacks %s", name);
            use_isa(i);
            Py_RETURN_NONE;
        }
    return PyErr_Format(PyExc_ValueError, "set_isa: unknown ISA %R (scalar, avx512)", arg);
}

static PyObject *get_isa(PyObject *self, PyObject *unused) { return PyUnicode_FromString(isa_names[isa_current]); }

static PyObject *supported_isas(PyObject *self, PyObject *unused) {
    PyObject *out = PyList_New(0);
    for (int i = 0; out && i < ISA_COUNT; i++)
        if (isa_supported(i)) {
            PyObject *name = PyUnicode_FromString(isa_names[i]);
            if (!name || PyList_Append(out, name) < 0) { Py_XDECREF(name); Py_DECREF(out); return NULL; }
            Py_DECREF(name);
        }
    return out;
}

static PyMethodDef methods[] = {
    {"set_isa", set_isa, METH_O, "Force a path: scalar or avx512 (ValueError if the CPU lacks it)."},
    {"get_isa", get_isa, METH_NOARGS, "The path in use."},
    {"supported_isas", supported_isas, METH_NOARGS, "The paths this CPU can run, best last."},
    {"group_ranges", group_ranges, METH_VARARGS, "Pass 1: (largest group range, all finite) over a run of groups."},
    {"quantize_groups", quantize_groups, METH_VARARGS, "Pass 2: search, feedback and packing of a run of groups."},
    {"feedback_matrices", feedback_matrices, METH_VARARGS, "ldlq.py rotated_hessian + feedback_matrix, float64."},
    {"eliminate", eliminate, METH_VARARGS, "ldlq.py feedback_matrix for blocks of any width, float64."},
    {"diff_amax", diff_amax, METH_VARARGS, "max |a - b| over a run of elements (binary64)."},
    {"diff_scaled", diff_scaled, METH_VARARGS, "round((a - b) 2^k) as int8 and the sum of their squares."},
    {"error_sums", error_sums, METH_VARARGS, "The exact sums of quality.py relative_error_ppm over a run."},
    {"block_energy", block_energy, METH_VARARGS, "measure.py Energy.of over a run of rows, exactly."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_quantize", "Native exact quantizer.", -1, methods};

PyMODINIT_FUNC PyInit__quantize(void) {
    int best = ISA_SCALAR;
    for (int i = 0; i < ISA_COUNT; i++)
        if (isa_supported(i)) best = i;
    const char *env = getenv("UC_ATTEST_QUANTIZE_ISA");
    if (env)
        for (int i = 0; i < ISA_COUNT; i++)
            if (!strcmp(env, isa_names[i]) && isa_supported(i)) best = i;
    use_isa(best);
    return PyModule_Create(&module);
}
