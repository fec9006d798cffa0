/* Serving kernels for packed Linear layers (docs/runtime.md): y = x W^T with W kept packed, off the digest path.
 *
 * exact  every row of W decoded bit for bit by the decoder's kernels (quant/_decode_kernels.h: the attested bytes,
 *        in the source dtype), widened to binary32 (exact), and each output an fp32 dot product in one fixed order:
 *        16 partial sums (k mod 16), a multiply then an add (no FMA), combined by a fixed tree. The result does not
 *        depend on the thread count, the ISA path or the batch (every output is computed the same way alone).
 * fast   the rotation moves to the activations (uc-rht-ldlq/1 shares its signs across rows: W's group holds
 *        D H (q - z) s, so x . w = s (q - z) . H (D x)): per token and group the activation slice is sign-flipped,
 *        Walsh-Hadamard transformed and quantized to 15-bit integers c = 128 h + l (h, l int8: two planes) with
 *        its scale a and sum S; then per row and group one integer dot product straight from the packed codes
 *        (AVX-512 VNNI: 128 (q . h) + q . l on codes unpacked in registers, or the portable loop) and one fp32
 *        step: y += (s 2^c) a (q . c - z S). Deterministic for every thread count, ISA and batch (integers, then
 *        the same fp32 steps in the same order); not equal to F.linear on the reconstruction (docs/runtime.md says
 *        by how much).
 * Work is split by output rows over OpenMP threads (run_parts), as many as the caller says (the process's thread
 * budget), never over K. Compiled with -ffp-contract=off -fno-fast-math like the decoder.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define UC_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif
#if defined(UC_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#define UC_AMX 1  /* AMX tiles need the kernel's permission (arch_prctl), asked for on Linux */
#endif

#include "../quant/_exact.h"
#include "../quant/_decode_kernels.h"

#define MAX_THREADS 64
#ifndef PREFETCH
#define PREFETCH 4096  /* bytes ahead in a row's codes (measured: 2048-8192 within 5%, none 10% slower) */
#endif

/* ---------------------------------------------------------------- parallel parts */

typedef void (*job_t)(void *ctx, int part, int parts);

/* Run fn(ctx, part, parts) for part 0..parts-1 on up to `threads` OpenMP threads, each thread taking the next part
 * not yet taken (an atomic counter): a thread the OS deschedules on a busy machine holds up one part, not a fixed
 * share of the call, and a thread that wakes late takes fewer parts. The OpenMP runtime is torch's intra-op pool
 * (libgomp, shared by soname): its threads, still spinning after torch's last op, take these parts, where a pool
 * of our own would compete with them for the same cores. The parts are fixed by `parts`; which thread takes
 * which never changes a result (every part's outputs are computed alone). */
static void run_parts(job_t fn, void *ctx, int parts, int threads) {
    if (threads > parts) threads = parts;
    if (threads <= 1) {
        for (int part = 0; part < parts; part++) fn(ctx, part, parts);
        return;
    }
    int next = 0;
#pragma omp parallel num_threads(threads)
    {
        for (int part; (part = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED)) < parts;) fn(ctx, part, parts);
    }
}

/* Parts of a call over n_rows output rows: blocks of 16 rows (the batched paths' unit), about 4 parts a thread so
 * that late or descheduled threads even out, none under 64 rows (a part's fixed costs stay small). */
static int row_parts(Py_ssize_t n_rows, int threads) {
    const Py_ssize_t most = (n_rows + 63) / 64;
    if (threads <= 1 || most <= 1) return 1;
    return (int)(4 * threads < most ? 4 * threads : most);
}

/* ---------------------------------------------------------------- the packed weight */

typedef struct {
    const uint8_t *codes;
    const uint16_t *scales;
    const uint8_t *zeros;
    Py_ssize_t n_rows, k;  /* W is n_rows x k, groups of `group` consecutive weights in C order */
    params_t p;            /* what the decoder needs (group, bits, dtype, rotation, 2^(e + shift)) */
} weight_t;

/* Rows r0..r1 of part `part`: whole blocks of 16 rows (the last block may be short), split as evenly as blocks go. */
static inline void rows_of(int part, int parts, Py_ssize_t n, Py_ssize_t *r0, Py_ssize_t *r1) {
    const Py_ssize_t blocks = (n + 15) / 16, b0 = blocks * part / parts, b1 = blocks * (part + 1) / parts;
    *r0 = 16 * b0 < n ? 16 * b0 : n;
    *r1 = 16 * b1 < n ? 16 * b1 : n;
}

/* ---------------------------------------------------------------- exact */

#define LANES 16

/* sum_k x[k] w[k] in one fixed order: 16 partial sums (k mod 16), each a multiply then an add, then a fixed tree. */
static inline float dot_fixed_scalar(const float *x, const float *w, Py_ssize_t k) {
    float acc[LANES] = {0};
    Py_ssize_t j = 0;
    for (; j + LANES <= k; j += LANES)
        for (int l = 0; l < LANES; l++) acc[l] = acc[l] + x[j + l] * w[j + l];
    for (int l = 0; j + l < k; l++) acc[l] = acc[l] + x[j + l] * w[j + l];
    for (int h = LANES / 2; h >= 1; h /= 2)
        for (int l = 0; l < h; l++) acc[l] = acc[l] + acc[l + h];
    return acc[0];
}

#ifdef UC_X86
#define T_SERVE512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,f16c")))

/* The same 16 partial sums as two 8-lane registers (lanes 0-7 and 8-15), then the same tree. */
T_AVX2 static inline float dot_fixed_avx2(const float *x, const float *w, Py_ssize_t k) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    Py_ssize_t j = 0;
    for (; j + LANES <= k; j += LANES) {
        lo = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(w + j)));
        hi = _mm256_add_ps(hi, _mm256_mul_ps(_mm256_loadu_ps(x + j + 8), _mm256_loadu_ps(w + j + 8)));
    }
    _Alignas(32) float a[LANES];
    _mm256_store_ps(a, lo);
    _mm256_store_ps(a + 8, hi);
    for (int l = 0; j + l < k; l++) a[l] = a[l] + x[j + l] * w[j + l];
    for (int h = LANES / 2; h >= 1; h /= 2)
        for (int l = 0; l < h; l++) a[l] = a[l] + a[l + h];
    return a[0];
}

T_SERVE512 static inline float dot_fixed_avx512(const float *x, const float *w, Py_ssize_t k) {
    __m512 acc = _mm512_setzero_ps();
    Py_ssize_t j = 0;
    for (; j + LANES <= k; j += LANES)
        acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(w + j)));
    if (j < k) {
        __mmask16 m = (__mmask16)((1u << (k - j)) - 1u);
        acc = _mm512_mask_add_ps(acc, m, acc, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), _mm512_maskz_loadu_ps(m, w + j)));
    }
    _Alignas(64) float a[LANES];
    _mm512_store_ps(a, acc);
    for (int h = LANES / 2; h >= 1; h /= 2)
        for (int l = 0; l < h; l++) a[l] = a[l] + a[l + h];
    return a[0];
}
#endif

static inline void widen(int dtype, const uint8_t *src, Py_ssize_t n, float *out) {
    if (dtype == 0) memcpy(out, src, (size_t)n * 4);
    else if (dtype == 1) for (Py_ssize_t i = 0; i < n; i++) out[i] = f16_to_f32(((const uint16_t *)src)[i]);
    else for (Py_ssize_t i = 0; i < n; i++) out[i] = bits_to_f32((uint32_t)((const uint16_t *)src)[i] << 16);
}

/* Where outputs go: the kernels write binary32 sums into y (m x n_rows); finish() adds the bias (binary32) and
 * stores each value in the output's dtype (round to nearest even), or leaves them where they are (binary32). */
typedef struct {
    float *y;            /* m x n_rows: the output itself when it is binary32, else scratch */
    void *out;           /* the output buffer */
    int dtype;           /* of out: 0 F32, 1 F16, 2 BF16 */
    const float *bias;   /* n_rows, or NULL */
} output_t;

static void finish(const output_t *o, Py_ssize_t m, Py_ssize_t n_rows, Py_ssize_t r0, Py_ssize_t r1) {
    for (Py_ssize_t i = 0; i < m; i++) {
        float *y = o->y + i * n_rows;
        for (Py_ssize_t r = r0; r < r1; r++) {
            const float v = o->bias ? y[r] + o->bias[r] : y[r];
            if (o->dtype == 0) y[r] = v;
            else if (o->dtype == 1) ((uint16_t *)o->out)[i * n_rows + r] = f32_to_f16(v);
            else ((uint16_t *)o->out)[i * n_rows + r] = f32_to_bf16(v);
        }
    }
}

typedef struct {
    const weight_t *w;
    const float *x;  /* m x k */
    float *y;        /* m x n_rows, binary32 */
    Py_ssize_t m;
    int isa;
    int failed;
    const output_t *o;
} exact_job_t;

#ifdef UC_X86
static int exact_fused_supported(const params_t *p, Py_ssize_t k);
static int exact_rows_avx512(exact_job_t *job, Py_ssize_t r0, Py_ssize_t r1);
#endif

static void exact_part(void *arg, int part, int parts) {
    exact_job_t *job = arg;
    const weight_t *w = job->w;
    Py_ssize_t r0, r1;
    rows_of(part, parts, w->n_rows, &r0, &r1);
#ifdef UC_X86
    if (job->isa == ISA_AVX512 && exact_fused_supported(&w->p, w->k)) {
        if (!exact_rows_avx512(job, r0, r1)) job->failed = 1;
        else finish(job->o, job->m, w->n_rows, r0, r1);
        return;
    }
#endif
    const Py_ssize_t k = w->k, g = w->p.group, total = w->n_rows * k;
    const size_t osize = w->p.dtype == 0 ? 4 : 2, group_bytes = (size_t)g * w->p.bits / 8;
    uint8_t *raw = malloc((size_t)(k + 2 * g) * osize);  /* the groups a row touches: it may start mid-group */
    float *row = malloc((size_t)k * sizeof(float));
    if (!raw || !row) {
        job->failed = 1;
        free(raw);
        free(row);
        return;
    }
    kernel_t kern = pick_kernel(&w->p, job->isa);
    for (Py_ssize_t r = r0; r < r1; r++) {
        const Py_ssize_t e0 = r * k, g0 = e0 / g, g1 = (e0 + k + g - 1) / g;
        const Py_ssize_t n = (g1 * g < total ? g1 * g : total) - g0 * g;
        kern(&w->p, w->codes + g0 * group_bytes, w->scales + g0, w->zeros + g0, (uint64_t)g0, g1 - g0, n, raw);
        widen(w->p.dtype, raw + (size_t)(e0 - g0 * g) * osize, k, row);
        for (Py_ssize_t i = 0; i < job->m; i++) {
#ifdef UC_X86
            const float *xi = job->x + i * k;
            float v = job->isa == ISA_AVX512 ? dot_fixed_avx512(xi, row, k)
                      : job->isa == ISA_AVX2 ? dot_fixed_avx2(xi, row, k)
                                             : dot_fixed_scalar(xi, row, k);
#else
            float v = dot_fixed_scalar(job->x + i * k, row, k);
#endif
            job->y[i * w->n_rows + r] = v;
        }
    }
    free(raw);
    free(row);
    finish(job->o, job->m, w->n_rows, r0, r1);
}

#ifdef UC_X86
/* 64 codes (8 * bits bytes) unpacked to 64 bytes: each 64-bit lane takes one 8-code octet's bytes (vpermb), the
 * codes are cut out at bit offsets 0, b, ..., 7b (vpmultishiftqb) and masked. */
static uint8_t perm64[9][64], shift64[9][64];
/* AVX2: 16 codes (2 * bits bytes, broadcast to both halves) into 16-bit lanes: lane j takes the bytes holding code
 * j (vpshufb), shifts it to the top by a multiply (16-bit lanes have no variable shift), then down by 16 - bits. */
static uint8_t shuf_w[9][32];
static uint16_t mul_w[9][16];

static void init_serve_tables(void) {
    for (int b = 2; b <= 8; b++) {
        for (int l = 0; l < 8; l++)
            for (int i = 0; i < 8; i++) {
                int idx = l * b + i;
                perm64[b][8 * l + i] = (uint8_t)(idx < 64 ? idx : 63);
                shift64[b][8 * l + i] = (uint8_t)(i * b);
            }
        for (int j = 0; j < 16; j++) {
            const int o = (b * j) >> 3, sh = (b * j) & 7;
            shuf_w[b][2 * j] = (uint8_t)o;
            shuf_w[b][2 * j + 1] = sh + b > 8 ? (uint8_t)(o + 1) : 0x80;  /* 0x80: a zero byte */
            mul_w[b][j] = (uint16_t)(1u << (16 - sh - b));
        }
    }
}

T_SERVE512 static inline __m512i unpack64(const uint8_t *cp, int bits, __m512i perm, __m512i shift, __m512i mask) {
    __m512i raw = _mm512_maskz_loadu_epi8((__mmask64)((bits * 8 == 64) ? ~0ULL : ((1ULL << (bits * 8)) - 1ULL)), cp);
    return _mm512_and_si512(_mm512_multishift_epi64_epi8(shift, _mm512_permutexvar_epi8(perm, raw)), mask);
}
#endif

#ifdef UC_X86
/* The fused exact path (AVX-512): each group decoded in registers exactly as kernel_avx512 decodes it, rounded to
 * the source dtype and widened back (the attested value, in binary32), and consumed at once: one token multiplies
 * and adds it into its 16 partial sums; several tokens get the row written once and dot it in turn. Rows of whole
 * groups only; rotated groups of 128 or unrotated groups of a multiple of 16. */
static int exact_fused_supported(const params_t *p, Py_ssize_t k) {
    return k % p->group == 0 && (p->rotated ? p->group == 128 : p->group % 16 == 0);
}

T_SERVE512 static inline __m512 round_to_dtype(int dtype, __m512 f) {
    if (dtype == 0) return f;
    if (dtype == 1) return _mm512_cvtph_ps(_mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
    __m512i u = _mm512_castps_si512(f);  /* bf16: round to nearest even on the bit pattern, as store16 */
    u = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)),
                                             _mm512_set1_epi32(0x7FFF)));
    return _mm512_castsi512_ps(_mm512_and_si512(u, _mm512_set1_epi32((int)0xFFFF0000u)));
}

/* The unnormalized Walsh-Hadamard transform of a rotated group of 128 codes, in int16 lanes (4 registers of 32):
 * q in 0..2^bits - 1, |values| <= 128 (2^bits - 1) < 2^13 at every stage (the format's bits + log2 g <= 13).
 * Integers: exact, the same numbers as fwht_i32 of (q - z) once z g is taken off element 0 (H 1 = g e0). */
T_SERVE512 static inline __m512i bfly32(__m512i v, __m512i partner, __mmask32 upper) {
    return _mm512_mask_sub_epi16(_mm512_add_epi16(v, partner), upper, partner, v);
}

T_SERVE512 static inline void fwht128_i16(const uint8_t *gp, int bits, int z, __m512i perm, __m512i shift,
                                          __m512i mask, __m512i v[4]) {
    const __m512i q0 = unpack64(gp, bits, perm, shift, mask), q1 = unpack64(gp + 8 * bits, bits, perm, shift, mask);
    v[0] = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(q0));
    v[1] = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(q0, 1));
    v[2] = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(q1));
    v[3] = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(q1, 1));
    for (int j = 0; j < 4; j++) {  /* stages h = 1, 2, 4 (within 128 bits), 8, 16 (across 128-bit lanes) */
        __m512i x = v[j];
        x = bfly32(x, _mm512_rol_epi32(x, 16), 0xAAAAAAAAu);
        x = bfly32(x, _mm512_shuffle_epi32(x, (_MM_PERM_ENUM)0xB1), 0xCCCCCCCCu);
        x = bfly32(x, _mm512_shuffle_epi32(x, (_MM_PERM_ENUM)0x4E), 0xF0F0F0F0u);
        x = bfly32(x, _mm512_shuffle_i32x4(x, x, 0xB1), 0xFF00FF00u);
        v[j] = bfly32(x, _mm512_shuffle_i32x4(x, x, 0x4E), 0xFFFF0000u);
    }
    for (int h = 1; h < 4; h <<= 1)  /* stages 32, 64: whole registers */
        for (int i = 0; i < 4; i += h << 1)
            for (int j = i; j < i + h; j++) {
                __m512i a = v[j], b = v[j + h];
                v[j] = _mm512_add_epi16(a, b);
                v[j + h] = _mm512_sub_epi16(a, b);
            }
    v[0] = _mm512_mask_sub_epi16(v[0], 1u, v[0], _mm512_set1_epi16((short)(z * 128)));
}

/* Row r's weights 16 at a time into out (k floats) or, with x, straight into the 16 partial sums *acc. With
 * `signed_x` the row-shared rotation signs are already on x (sign_k x_k w_k = x_k (sign_k w_k) exactly: rounding
 * to nearest is symmetric), so they are not applied to the weights. */
T_SERVE512 static inline void exact_row_avx512(const weight_t *w, Py_ssize_t r, const float *x, int signed_x,
                                               __m512 *acc, float *out) {
    const params_t *p = &w->p;
    const int g = p->group, bits = p->bits, dtype = p->dtype;
    const Py_ssize_t gpr = w->k / g, group_bytes = (Py_ssize_t)g * bits / 8;
    const __m512i shuf = _mm512_loadu_si512(shuf16[bits]), shifts = _mm512_loadu_si512(shift16[bits]);
    const __m512i mask = _mm512_set1_epi32((1 << bits) - 1), sign = _mm512_set1_epi32((int)0x80000000u);
    const __m512i perm = _mm512_loadu_si512(perm64[bits]), shift = _mm512_loadu_si512(shift64[bits]);
    const __m512i mask8 = _mm512_set1_epi8((char)((1 << bits) - 1));
    __m512 a = x ? *acc : _mm512_setzero_ps();
    for (Py_ssize_t b = 0; b < gpr; b++) {
        const Py_ssize_t gi = r * gpr + b;
        const uint8_t *gp = w->codes + gi * group_bytes;
        const __m512 s = _mm512_set1_ps(f16_to_f32(w->scales[gi]) * p->pow2);
        const Py_ssize_t e = b * g;
        if (p->rotated) {  /* g == 128 */
            __m512i v[4];
            fwht128_i16(gp, bits, w->zeros[gi], perm, shift, mask8, v);
            uint64_t bm[2] = {0, 0};
            if (!signed_x) group_signs(bm, p->key, (uint64_t)gi * 128u, 128, p->period);
            for (int j = 0; j < 8; j++) {
                __m256i half = (j & 1) ? _mm512_extracti64x4_epi64(v[j / 2], 1) : _mm512_castsi512_si256(v[j / 2]);
                __m512i u = _mm512_castps_si512(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(half)), s));
                __mmask16 m = (__mmask16)((bm[j / 4] >> (16 * (j % 4))) & 0xFFFF);
                __m512 f = round_to_dtype(dtype, _mm512_castsi512_ps(_mm512_mask_xor_epi32(u, m, u, sign)));
                if (x) a = _mm512_add_ps(a, _mm512_mul_ps(_mm512_loadu_ps(x + e + 16 * j), f));
                else _mm512_storeu_ps(out + e + 16 * j, f);
            }
        } else {
            const __m512i z = _mm512_set1_epi32(w->zeros[gi]);
            for (int j = 0; j < g; j += 16, gp += 2 * bits) {
                __m512 f = round_to_dtype(dtype, _mm512_mul_ps(
                    _mm512_cvtepi32_ps(unpack16(gp, p->codes_end, bits, shuf, shifts, mask, z)), s));
                if (x) a = _mm512_add_ps(a, _mm512_mul_ps(_mm512_loadu_ps(x + e + j), f));
                else _mm512_storeu_ps(out + e + j, f);
            }
        }
    }
    if (x) *acc = a;
}

/* The 16 partial sums summed by the fixed tree of dot_fixed_scalar. */
T_SERVE512 static inline float tree16(__m512 acc) {
    _Alignas(64) float t[LANES];
    _mm512_store_ps(t, acc);
    for (int h = LANES / 2; h >= 1; h /= 2)
        for (int l = 0; l < h; l++) t[l] = t[l] + t[l + h];
    return t[0];
}

T_SERVE512 static int exact_rows_avx512(exact_job_t *job, Py_ssize_t r0, Py_ssize_t r1) {
    const weight_t *w = job->w;
    const Py_ssize_t k = w->k;
    if (job->m == 1) {
        const float *x = job->x;
        float *xs = NULL;
        const int fold = w->p.rotated && w->p.period == (uint64_t)k;  /* row-shared signs: onto x, once */
        if (fold) {
            xs = malloc((size_t)k * sizeof(float));
            if (!xs) return 0;
            uint64_t bm[2];
            for (Py_ssize_t e = 0; e < k; e += 128) {
                group_signs(bm, w->p.key, (uint64_t)e, 128, w->p.period);
                for (int j = 0; j < 128; j++)
                    xs[e + j] = ((bm[j / 64] >> (j % 64)) & 1u) ? -job->x[e + j] : job->x[e + j];
            }
            x = xs;
        }
        for (Py_ssize_t r = r0; r < r1; r++) {
            __m512 acc = _mm512_setzero_ps();
            exact_row_avx512(w, r, x, fold, &acc, NULL);
            job->y[r] = tree16(acc);
        }
        free(xs);
        return 1;
    }
    float *row = malloc((size_t)k * sizeof(float));
    if (!row) return 0;
    for (Py_ssize_t r = r0; r < r1; r++) {
        exact_row_avx512(w, r, NULL, 0, NULL, row);
        for (Py_ssize_t i = 0; i < job->m; i++) job->y[i * w->n_rows + r] = dot_fixed_avx512(job->x + i * k, row, k);
    }
    free(row);
    return 1;
}
#endif

/* ---------------------------------------------------------------- fast: int8 activations */

/* Activations are quantized to C_MAX = 127 * 128 levels each side: c = round(t / a), a = max|t| / C_MAX, kept as
 * two int8 planes h = (c + 64) >> 7 (in -127..127) and l = c - 128 h (in -64..63), because VNNI multiplies bytes.
 * Every integer sum (q . c, z S and d = (q - z) . c, partial sums included) is at most (2^bits - 1) C_MAX g in
 * magnitude: fast takes a weight only where that stays below 2^31 (fast_fits). */
#define C_MAX 16256

static int fast_fits(int bits, int g) { return (double)((1 << bits) - 1) * C_MAX * g < 2147483648.0; }

static inline void split_c(int32_t c, int8_t *hi, int8_t *lo) {
    const int32_t h = (c + 64) >> 7;  /* arithmetic shift: floor */
    *hi = (int8_t)h;
    *lo = (int8_t)(c - 128 * h);
}

/* One activation row: per group, the signs, the Walsh-Hadamard transform (binary32, butterflies h = 1, 2, ...),
 * then c = round(t / a) (to nearest even) with a = max|t| / C_MAX, split into the planes x8[0..k) (h) and
 * x8[k..2k) (l), and the sum of the c. A group holding a NaN or an infinity gets a = NaN (and zeros): the outputs
 * it feeds are NaN, as the exact product's would be. */
static void quantize_row(const float *x, Py_ssize_t k, int g, int rotated, uint64_t key, uint64_t period, int8_t *x8,
                         float *scale, int32_t *sum) {
    float t[MAX_GROUP];
    uint64_t bm[MAX_GROUP / 64];
    for (Py_ssize_t b = 0; b < k / g; b++) {
        memcpy(t, x + b * g, (size_t)g * sizeof(float));
        if (rotated) {
            group_signs(bm, key, (uint64_t)(b * g), g, period);
            for (int j = 0; j < g; j++)
                if ((bm[j / 64] >> (j % 64)) & 1u) t[j] = -t[j];
            for (int h = 1; h < g; h <<= 1)
                for (int i = 0; i < g; i += h << 1)
                    for (int j = i; j < i + h; j++) {
                        float u = t[j], v = t[j + h];
                        t[j] = u + v;
                        t[j + h] = u - v;
                    }
        }
        float amax = 0.0f;
        int bad = 0;
        for (int j = 0; j < g; j++) {
            const float f = fabsf(t[j]);
            if (!(f <= FLT_MAX)) bad = 1;  /* NaN or infinity */
            else if (f > amax) amax = f;
        }
        const float a = bad ? NAN : amax / (float)C_MAX;
        int32_t s = 0;
        for (int j = 0; j < g; j++) {
            float q = !bad && a > 0.0f ? nearbyintf(t[j] / a) : 0.0f;
            q = q > (float)C_MAX ? (float)C_MAX : (q < -(float)C_MAX ? -(float)C_MAX : q);
            split_c((int32_t)q, &x8[b * g + j], &x8[k + b * g + j]);
            s += (int32_t)q;
        }
        scale[b] = a;
        sum[b] = s;
    }
}

#ifdef UC_X86
T_SERVE512 static inline __m512 fwht16_ps(__m512 v) {  /* stages h = 1, 2, 4, 8 within one register */
    v = _mm512_mask_sub_ps(_mm512_add_ps(v, _mm512_permute_ps(v, 0xB1)), 0xAAAA, _mm512_permute_ps(v, 0xB1), v);
    v = _mm512_mask_sub_ps(_mm512_add_ps(v, _mm512_permute_ps(v, 0x4E)), 0xCCCC, _mm512_permute_ps(v, 0x4E), v);
    __m512 p = _mm512_shuffle_f32x4(v, v, 0xB1);
    v = _mm512_mask_sub_ps(_mm512_add_ps(v, p), 0xF0F0, p, v);
    p = _mm512_shuffle_f32x4(v, v, 0x4E);
    return _mm512_mask_sub_ps(_mm512_add_ps(v, p), 0xFF00, p, v);
}

/* quantize_row for groups of a multiple of 16 on AVX-512: the same operations on the same operands (the
 * butterflies of a stage are independent; max and integer sums are exact in any order), so the same bytes. */
T_SERVE512 static void quantize_row_avx512(const float *x, Py_ssize_t k, int g, int rotated, uint64_t key,
                                           uint64_t period, int8_t *x8, float *scale, int32_t *sum) {
    _Alignas(64) float t[MAX_GROUP];
    uint64_t bm[MAX_GROUP / 64];
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    const __m512 big = _mm512_set1_ps(FLT_MAX);
    for (Py_ssize_t b = 0; b < k / g; b++) {
        const float *xs = x + b * g;
        if (rotated) {
            group_signs(bm, key, (uint64_t)(b * g), g, period);
            for (int j = 0; j < g; j += 16) {
                __m512i u = _mm512_castps_si512(_mm512_loadu_ps(xs + j));
                const __mmask16 m = (__mmask16)((bm[j / 64] >> (j % 64)) & 0xFFFF);
                _mm512_store_ps(t + j, fwht16_ps(_mm512_castsi512_ps(_mm512_mask_xor_epi32(u, m, u, sign))));
            }
            for (int h = 16; h < g; h <<= 1)
                for (int i = 0; i < g; i += h << 1)
                    for (int j = i; j < i + h; j += 16) {
                        const __m512 u = _mm512_load_ps(t + j), v = _mm512_load_ps(t + j + h);
                        _mm512_store_ps(t + j, _mm512_add_ps(u, v));
                        _mm512_store_ps(t + j + h, _mm512_sub_ps(u, v));
                    }
        } else {
            memcpy(t, xs, (size_t)g * sizeof(float));
        }
        __m512 amax = _mm512_setzero_ps();
        __mmask16 bad = 0;
        for (int j = 0; j < g; j += 16) {
            const __m512 f = _mm512_abs_ps(_mm512_load_ps(t + j));
            bad |= _mm512_cmp_ps_mask(f, big, _CMP_NLE_UQ);  /* NaN or infinity */
            amax = _mm512_max_ps(amax, f);
        }
        const float am = _mm512_reduce_max_ps(amax);
        const float a = bad ? NAN : am / (float)C_MAX;
        __m512i s = _mm512_setzero_si512();
        if (!bad && a > 0.0f) {
            const __m512 av = _mm512_set1_ps(a), lim = _mm512_set1_ps((float)C_MAX), nlim = _mm512_set1_ps(-(float)C_MAX);
            const __m512i half = _mm512_set1_epi32(64);
            for (int j = 0; j < g; j += 16) {
                __m512 q = _mm512_roundscale_ps(_mm512_div_ps(_mm512_load_ps(t + j), av),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                const __m512i qi = _mm512_cvtps_epi32(_mm512_max_ps(_mm512_min_ps(q, lim), nlim));
                const __m512i hi = _mm512_srai_epi32(_mm512_add_epi32(qi, half), 7);
                const __m512i lo = _mm512_sub_epi32(qi, _mm512_slli_epi32(hi, 7));
                _mm_storeu_si128((__m128i *)(x8 + b * g + j), _mm512_cvtepi32_epi8(hi));
                _mm_storeu_si128((__m128i *)(x8 + k + b * g + j), _mm512_cvtepi32_epi8(lo));
                s = _mm512_add_epi32(s, qi);
            }
        } else {
            memset(x8 + b * g, 0, (size_t)g);
            memset(x8 + k + b * g, 0, (size_t)g);
        }
        scale[b] = a;
        sum[b] = _mm512_reduce_add_epi32(s);
    }
}
#endif

typedef struct {
    const float *x;
    Py_ssize_t m, k;
    int g, rotated, isa;
    uint64_t key, period;
    int8_t *x8;
    float *scale;
    int32_t *sum;
} quant_job_t;

static void quantize_part(void *arg, int part, int parts) {  /* tokens split evenly over the parts */
    const quant_job_t *q = arg;
    const Py_ssize_t i0 = q->m * part / parts, i1 = q->m * (part + 1) / parts;
    const Py_ssize_t gpr = q->k / q->g;
    for (Py_ssize_t i = i0; i < i1; i++) {
#ifdef UC_X86
        if (q->isa == ISA_AVX512 && q->g % 16 == 0) {
            quantize_row_avx512(q->x + i * q->k, q->k, q->g, q->rotated, q->key, q->period, q->x8 + 2 * i * q->k,
                                q->scale + i * gpr, q->sum + i * gpr);
            continue;
        }
#endif
        quantize_row(q->x + i * q->k, q->k, q->g, q->rotated, q->key, q->period, q->x8 + 2 * i * q->k,
                     q->scale + i * gpr, q->sum + i * gpr);
    }
}

/* The integer dot product of one group's packed codes (unsigned, `bits` each) with g activations c = 128 h + l
 * (h at x8, l at x8 + k). */
static inline int32_t dot_codes_scalar(const uint8_t *cp, int g, int bits, const int8_t *x8, Py_ssize_t k) {
    const uint64_t mask = (1u << bits) - 1u;
    int32_t d = 0;
    for (int c8 = 0; c8 < g; c8 += 8, cp += bits) {
        uint64_t word = 0;
        memcpy(&word, cp, (size_t)bits);
        for (int j = 0; j < 8; j++)
            d += (int32_t)((word >> (bits * j)) & mask) * (128 * (int32_t)x8[c8 + j] + (int32_t)x8[k + c8 + j]);
    }
    return d;
}


typedef struct {
    const weight_t *w;
    const int8_t *x8;      /* m x 2k: per token the h plane, then the l plane */
    const int8_t *xt;      /* the planes as AMX B tiles (amx_pack_acts), or NULL: not on the AMX path */
    const float *scale;    /* m x k/g */
    const int32_t *sum;    /* m x k/g */
    float *y;              /* m x n_rows */
    Py_ssize_t m;
    int isa;
    int failed;
    const output_t *o;
} fast_job_t;

#ifdef UC_X86
/* Rows r0..r1 of fast mode on AVX-512 VBMI + VNNI, one row at a time: each group's codes unpacked once, used for
 * every token (the rows a block of 16 leaves over). */
T_SERVE512 static void fast_rows_avx512(const fast_job_t *job, Py_ssize_t r0, Py_ssize_t r1) {
    const weight_t *w = job->w;
    const int g = w->p.group, bits = w->p.bits;
    const Py_ssize_t k = w->k, gpr = k / g, group_bytes = (Py_ssize_t)g * bits / 8;
    const float pow2 = w->p.pow2;
    const __m512i perm = _mm512_loadu_si512(perm64[bits]), shift = _mm512_loadu_si512(shift64[bits]);
    const __m512i mask = _mm512_set1_epi8((char)((1 << bits) - 1));
    __m512i q[MAX_GROUP / 64];
    for (Py_ssize_t r = r0; r < r1; r++) {
        for (Py_ssize_t i = 0; i < job->m; i++) job->y[i * w->n_rows + r] = 0.0f;
        for (Py_ssize_t b = 0; b < gpr; b++) {
            const Py_ssize_t gi = r * gpr + b;
            const uint8_t *cp = w->codes + gi * group_bytes;
            for (int v = 0; v < g / 64; v++) q[v] = unpack64(cp + v * 8 * bits, bits, perm, shift, mask);
            const float s = f16_to_f32(w->scales[gi]) * pow2;
            const int32_t z = w->zeros[gi];
            for (Py_ssize_t i = 0; i < job->m; i++) {
                const int8_t *xv = job->x8 + 2 * i * k + b * g;
                __m512i hi = _mm512_setzero_si512(), lo = hi;
                for (int v = 0; v < g / 64; v++) {
                    hi = _mm512_dpbusd_epi32(hi, q[v], _mm512_loadu_si512(xv + 64 * v));
                    lo = _mm512_dpbusd_epi32(lo, q[v], _mm512_loadu_si512(xv + k + 64 * v));
                }
                const int32_t d = _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_slli_epi32(hi, 7), lo)) -
                                  z * job->sum[i * gpr + b];
                float *y = &job->y[i * w->n_rows + r];
                *y = *y + (s * job->scale[i * gpr + b]) * (float)d;
            }
        }
    }
}

/* Lane r of the result: the sum of the 16 lanes of a[r] (integers: exact in any order). */
T_SERVE512 static inline __m512i reduce16(__m512i a[16]) {
    __m512i s4[4];
    for (int j = 0; j < 4; j++) {
        __m512i p[2];
        for (int h = 0; h < 2; h++) {
            __m512i x = a[4 * j + 2 * h], y = a[4 * j + 2 * h + 1];
            p[h] = _mm512_add_epi32(_mm512_unpacklo_epi32(x, y), _mm512_unpackhi_epi32(x, y));
        }
        s4[j] = _mm512_add_epi32(_mm512_unpacklo_epi64(p[0], p[1]), _mm512_unpackhi_epi64(p[0], p[1]));
    }  /* s4[j]: rows 4j..4j+3 in each 128-bit lane, one partial sum per lane */
    __m512i u01 = _mm512_add_epi32(_mm512_shuffle_i32x4(s4[0], s4[1], 0x88), _mm512_shuffle_i32x4(s4[0], s4[1], 0xDD));
    __m512i u23 = _mm512_add_epi32(_mm512_shuffle_i32x4(s4[2], s4[3], 0x88), _mm512_shuffle_i32x4(s4[2], s4[3], 0xDD));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(u01, u23, 0x88), _mm512_shuffle_i32x4(u01, u23, 0xDD));
}

/* A 16 x 16 matrix of 32-bit values transposed in registers: out[c] lane r = in[r] lane c. */
T_SERVE512 static inline void transpose16(const __m512i in[16], __m512i out[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(in[i], in[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(in[i], in[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }  /* u[4q + j], 128-bit lane L: column 4L + j of rows 4q..4q+3 */
    for (int j = 0; j < 4; j++) {
        __m512i v = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44), w = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44);
        __m512i v2 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xEE), w2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xEE);
        out[j] = _mm512_shuffle_i32x4(v, w, 0x88);
        out[4 + j] = _mm512_shuffle_i32x4(v, w, 0xDD);
        out[8 + j] = _mm512_shuffle_i32x4(v2, w2, 0x88);
        out[12 + j] = _mm512_shuffle_i32x4(v2, w2, 0xDD);
    }
}

/* The scales (times 2^(e + shift)) and zero-points of group b of rows rb..rb+15, one per lane. */
T_SERVE512 static inline void block_params(const weight_t *w, Py_ssize_t rb, Py_ssize_t gpr, Py_ssize_t b, __m512 *s,
                                           __m512i *z) {
    _Alignas(32) uint16_t sh[16];
    _Alignas(64) int32_t zz[16];
    for (int r = 0; r < 16; r++) {
        sh[r] = w->scales[(rb + r) * gpr + b];
        zz[r] = w->zeros[(rb + r) * gpr + b];
    }
    *s = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_load_si256((const __m256i *)sh)), _mm512_set1_ps(w->p.pow2));
    *z = _mm512_load_si512(zz);
}

/* Rows r0..r1 for token i (few tokens), each row read front to back: the integer dot products of 16 consecutive
 * groups reduced together (lane j: group b + j), then (s a) d per group in lanes, then y += that, group after
 * group in order: what the scalar path computes, with one stream of codes, scales and zero-points per row. */
T_SERVE512 static void fast_rows_gemv(const fast_job_t *job, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t i) {
    const weight_t *w = job->w;
    const int g = w->p.group, bits = w->p.bits;
    const Py_ssize_t k = w->k, gpr = k / g, group_bytes = (Py_ssize_t)g * bits / 8;
    const __m512i perm = _mm512_loadu_si512(perm64[bits]), shift = _mm512_loadu_si512(shift64[bits]);
    const __m512i mask = _mm512_set1_epi8((char)((1 << bits) - 1));
    const __m512 pow2 = _mm512_set1_ps(w->p.pow2);
    const int8_t *x8 = job->x8 + 2 * i * k;
    const float *xa = job->scale + i * gpr;
    const int32_t *xs = job->sum + i * gpr;
    for (Py_ssize_t r = r0; r < r1; r++) {
        const uint8_t *codes = w->codes + r * gpr * group_bytes;
        const uint16_t *scales = w->scales + r * gpr;
        const uint8_t *zeros = w->zeros + r * gpr;
        float y = 0.0f;
        for (Py_ssize_t b0 = 0; b0 < gpr; b0 += 16) {
            const int n = gpr - b0 < 16 ? (int)(gpr - b0) : 16;
            const __mmask16 lanes = (__mmask16)((1u << n) - 1u);
            __m512i acc[16];
            for (int j = 0; j < 16; j++) {
                __m512i hi = _mm512_setzero_si512(), lo = hi;
                if (j < n) {
                    const uint8_t *cp = codes + (b0 + j) * group_bytes;
                    const int8_t *xv = x8 + (b0 + j) * g;
                    _mm_prefetch((const char *)cp + PREFETCH, _MM_HINT_T0);  /* stays inside the codes: a hint only */
                    _mm_prefetch((const char *)cp + PREFETCH + 64, _MM_HINT_T0);
                    for (int v = 0; v < g / 64; v++) {
                        const __m512i qv = unpack64(cp + v * 8 * bits, bits, perm, shift, mask);
                        hi = _mm512_dpbusd_epi32(hi, qv, _mm512_loadu_si512(xv + 64 * v));
                        lo = _mm512_dpbusd_epi32(lo, qv, _mm512_loadu_si512(xv + k + 64 * v));
                    }
                }
                acc[j] = _mm512_add_epi32(_mm512_slli_epi32(hi, 7), lo);
            }
            const __m512 s = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, scales + b0)), pow2);
            const __m512i z = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes, zeros + b0));
            const __m512i d = _mm512_sub_epi32(reduce16(acc), _mm512_mullo_epi32(z, _mm512_maskz_loadu_epi32(lanes, xs + b0)));
            const __m512 t = _mm512_mul_ps(_mm512_mul_ps(s, _mm512_maskz_loadu_ps(lanes, xa + b0)), _mm512_cvtepi32_ps(d));
            _Alignas(64) float tv[16];
            _mm512_store_ps(tv, t);
            for (int j = 0; j < n; j++) y = y + tv[j];
        }
        job->y[i * w->n_rows + r] = y;
    }
}

/* Rows rb..rb+15 for every token (a batch): each group's codes unpacked once and interleaved 4 bytes per row
 * (vector c, lane r: codes 4c..4c+3 of row r), then per token one dpbusd per 4 codes with the token's 4 int8
 * values broadcast: the 16 rows' dot products accumulate in lanes, no reduction. ybuf: m x 16 floats. */
T_SERVE512 static void fast_block_gemm(const fast_job_t *job, Py_ssize_t rb, float *ybuf) {
    const weight_t *w = job->w;
    const int g = w->p.group, bits = w->p.bits;
    const Py_ssize_t k = w->k, gpr = k / g, group_bytes = (Py_ssize_t)g * bits / 8, m = job->m;
    const __m512i perm = _mm512_loadu_si512(perm64[bits]), shift = _mm512_loadu_si512(shift64[bits]);
    const __m512i mask = _mm512_set1_epi8((char)((1 << bits) - 1));
    __m512i wt[MAX_GROUP / 4];
    for (Py_ssize_t i = 0; i < m; i++) _mm512_storeu_ps(ybuf + 16 * i, _mm512_setzero_ps());
    for (Py_ssize_t b = 0; b < gpr; b++) {
        for (int v = 0; v < g / 64; v++) {
            __m512i rows[16];
            for (int r = 0; r < 16; r++)
                rows[r] = unpack64(w->codes + ((rb + r) * gpr + b) * group_bytes + v * 8 * bits, bits, perm, shift, mask);
            transpose16(rows, wt + 16 * v);
        }
        __m512 s;
        __m512i z;
        block_params(w, rb, gpr, b, &s, &z);
        Py_ssize_t i = 0;
        const Py_ssize_t xs = k / 2;  /* one token's int32 words (both planes); its l plane k / 4 words on */
        for (; i + 4 <= m; i += 4) {
            const int32_t *x0 = (const int32_t *)(job->x8 + 2 * i * k + b * g), *l0 = x0 + k / 4;
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for (int c = 0; c < g / 4; c++) {
                a0 = _mm512_dpbusd_epi32(a0, wt[c], _mm512_set1_epi32(x0[c]));
                a1 = _mm512_dpbusd_epi32(a1, wt[c], _mm512_set1_epi32(x0[xs + c]));
                a2 = _mm512_dpbusd_epi32(a2, wt[c], _mm512_set1_epi32(x0[2 * xs + c]));
                a3 = _mm512_dpbusd_epi32(a3, wt[c], _mm512_set1_epi32(x0[3 * xs + c]));
                b0 = _mm512_dpbusd_epi32(b0, wt[c], _mm512_set1_epi32(l0[c]));
                b1 = _mm512_dpbusd_epi32(b1, wt[c], _mm512_set1_epi32(l0[xs + c]));
                b2 = _mm512_dpbusd_epi32(b2, wt[c], _mm512_set1_epi32(l0[2 * xs + c]));
                b3 = _mm512_dpbusd_epi32(b3, wt[c], _mm512_set1_epi32(l0[3 * xs + c]));
            }
            __m512i acc[4] = {_mm512_add_epi32(_mm512_slli_epi32(a0, 7), b0), _mm512_add_epi32(_mm512_slli_epi32(a1, 7), b1),
                              _mm512_add_epi32(_mm512_slli_epi32(a2, 7), b2), _mm512_add_epi32(_mm512_slli_epi32(a3, 7), b3)};
            for (int t = 0; t < 4; t++) {
                const Py_ssize_t it = i + t;
                __m512i d = _mm512_sub_epi32(acc[t], _mm512_mullo_epi32(z, _mm512_set1_epi32(job->sum[it * gpr + b])));
                __m512 yv = _mm512_loadu_ps(ybuf + 16 * it);
                yv = _mm512_add_ps(yv, _mm512_mul_ps(_mm512_mul_ps(s, _mm512_set1_ps(job->scale[it * gpr + b])),
                                                     _mm512_cvtepi32_ps(d)));
                _mm512_storeu_ps(ybuf + 16 * it, yv);
            }
        }
        for (; i < m; i++) {
            const int32_t *x0 = (const int32_t *)(job->x8 + 2 * i * k + b * g), *l0 = x0 + k / 4;
            __m512i a0 = _mm512_setzero_si512(), b0 = a0;
            for (int c = 0; c < g / 4; c++) {
                a0 = _mm512_dpbusd_epi32(a0, wt[c], _mm512_set1_epi32(x0[c]));
                b0 = _mm512_dpbusd_epi32(b0, wt[c], _mm512_set1_epi32(l0[c]));
            }
            __m512i d = _mm512_sub_epi32(_mm512_add_epi32(_mm512_slli_epi32(a0, 7), b0),
                                         _mm512_mullo_epi32(z, _mm512_set1_epi32(job->sum[i * gpr + b])));
            __m512 yv = _mm512_loadu_ps(ybuf + 16 * i);
            yv = _mm512_add_ps(yv, _mm512_mul_ps(_mm512_mul_ps(s, _mm512_set1_ps(job->scale[i * gpr + b])),
                                                 _mm512_cvtepi32_ps(d)));
            _mm512_storeu_ps(ybuf + 16 * i, yv);
        }
    }
    for (Py_ssize_t i = 0; i < m; i++) memcpy(job->y + i * w->n_rows + rb, ybuf + 16 * i, 16 * sizeof(float));
}

#ifdef UC_AMX
/* Batches on AMX (TDPBUSD: a 16 x 64 tile of unsigned bytes times a 64 x 16 tile of signed bytes, int32 sums):
 * the same integers as every path, so the same outputs. A = 16 rows' codes of one 64-wide chunk of a group,
 * unpacked once and used for every block of 16 tokens; B = 16 tokens' activations of that chunk, one tile per plane,
 * 4 consecutive values of a token side by side (amx_pack_acts, once per call); C = 16 rows x 16 tokens, one tile
 * per plane, started at zero per group. Then per row and group, in lanes over tokens: d = 128 C_h + C_l - z S and
 * y = y + (s a) d, group after group: what the scalar path computes. */
#define T_AMX __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,f16c")))

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg_t;

static int amx_on = 0;  /* the batched path uses AMX (set_isa "amx"); everything else runs as on avx512 */

static int amx_supported(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 24) & 1) || !((d >> 25) & 1)) return 0;  /* TILE, INT8 */
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
}

/* Token block tb, group b, chunk v, plane p -> 16 x 64 bytes: row j holds, for tokens n = 0..15, values
 * 4j..4j+3 of the chunk (tokens past m are zeros). Layout: [tb][b * g / 64 + v][p][16][64]. */
static void amx_pack_acts(const int8_t *x8, Py_ssize_t m, Py_ssize_t k, int8_t *xt) {
    const Py_ssize_t chunks = k / 64;
    for (Py_ssize_t tb = 0; tb * 16 < m; tb++)
        for (Py_ssize_t c = 0; c < chunks; c++)
            for (int p = 0; p < 2; p++) {
                int8_t *t = xt + ((tb * chunks + c) * 2 + p) * 1024;
                for (int n = 0; n < 16; n++) {
                    const Py_ssize_t i = tb * 16 + n;
                    for (int j = 0; j < 16; j++) {
                        if (i < m) memcpy(t + j * 64 + 4 * n, x8 + 2 * i * k + p * k + c * 64 + 4 * j, 4);
                        else memset(t + j * 64 + 4 * n, 0, 4);
                    }
                }
            }
}

/* Rows rb..rb+15 for every token on AMX. ybuf: 16 x (m rounded up to 16) floats, row-major. */
T_AMX static void fast_block_amx(const fast_job_t *job, Py_ssize_t rb, float *ybuf) {
    const weight_t *w = job->w;
    const int g = w->p.group, bits = w->p.bits, cpg = g / 64;
    const Py_ssize_t k = w->k, gpr = k / g, group_bytes = (Py_ssize_t)g * bits / 8, m = job->m;
    const Py_ssize_t mp = (m + 15) / 16 * 16, chunks = k / 64;
    const __m512i perm = _mm512_loadu_si512(perm64[bits]), shift = _mm512_loadu_si512(shift64[bits]);
    const __m512i mask = _mm512_set1_epi8((char)((1 << bits) - 1));
    _Alignas(64) uint8_t a[MAX_GROUP / 64][16][64];
    _Alignas(64) int32_t ch[16][16], cl[16][16];
    memset(ybuf, 0, (size_t)(16 * mp) * sizeof(float));
    for (Py_ssize_t b = 0; b < gpr; b++) {
        for (int v = 0; v < cpg; v++)
            for (int r = 0; r < 16; r++)
                _mm512_store_si512(a[v][r], unpack64(w->codes + ((rb + r) * gpr + b) * group_bytes + v * 8 * bits,
                                                     bits, perm, shift, mask));
        __m512 s;
        __m512i z;
        block_params(w, rb, gpr, b, &s, &z);
        _Alignas(64) float sv[16];
        _Alignas(64) int32_t zv[16];
        _mm512_store_ps(sv, s);
        _mm512_store_si512(zv, z);
        for (Py_ssize_t tb = 0; tb * 16 < m; tb++) {
            _tile_zero(0);
            _tile_zero(1);
            for (int v = 0; v < cpg; v++) {
                const int8_t *bt = job->xt + ((tb * chunks + b * cpg + v) * 2) * 1024;
                _tile_loadd(2, a[v], 64);
                _tile_loadd(3, bt, 64);
                _tile_loadd(4, bt + 1024, 64);
                _tile_dpbusd(0, 2, 3);
                _tile_dpbusd(1, 2, 4);
            }
            _tile_stored(0, ch, 64);
            _tile_stored(1, cl, 64);
            const Py_ssize_t i0 = tb * 16;
            _Alignas(64) int32_t st[16];
            _Alignas(64) float at[16];
            for (int n = 0; n < 16; n++) {
                st[n] = i0 + n < m ? job->sum[(i0 + n) * gpr + b] : 0;
                at[n] = i0 + n < m ? job->scale[(i0 + n) * gpr + b] : 0.0f;
            }
            const __m512i sn = _mm512_load_si512(st);
            const __m512 an = _mm512_load_ps(at);
            for (int r = 0; r < 16; r++) {
                const __m512i d = _mm512_sub_epi32(
                    _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(ch[r]), 7), _mm512_load_si512(cl[r])),
                    _mm512_mullo_epi32(_mm512_set1_epi32(zv[r]), sn));
                float *yr = ybuf + r * mp + i0;
                const __m512 t = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(sv[r]), an), _mm512_cvtepi32_ps(d));
                _mm512_store_ps(yr, _mm512_add_ps(_mm512_load_ps(yr), t));
            }
        }
    }
    for (Py_ssize_t i0 = 0; i0 < m; i0 += 16) {  /* 16 x 16 transposed in registers: each token's 16 rows at once */
        __m512i in[16], out[16];
        for (int r = 0; r < 16; r++) in[r] = _mm512_load_si512(ybuf + r * mp + i0);
        transpose16(in, out);
        for (Py_ssize_t n = 0; n < 16 && i0 + n < m; n++) _mm512_storeu_si512(job->y + (i0 + n) * w->n_rows + rb, out[n]);
    }
}

T_AMX static int fast_part_amx(const fast_job_t *job, Py_ssize_t *r, Py_ssize_t r1) {
    const Py_ssize_t mp = (job->m + 15) / 16 * 16;
    float *ybuf = aligned_alloc(64, (size_t)(16 * mp) * sizeof(float));
    if (!ybuf) return 0;
    tilecfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 5; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    for (; *r + 16 <= r1; *r += 16) fast_block_amx(job, *r, ybuf);
    _tile_release();
    free(ybuf);
    return 1;
}
#endif

/* Rows r0..r1 on AVX-512: blocks of 16 rows (gemv for fewer than 4 tokens, gemm otherwise: on AMX tiles where
 * there are), the rest row by row. Returns 0 when a buffer cannot be allocated. */
T_SERVE512 static int fast_part_avx512(const fast_job_t *job, Py_ssize_t r0, Py_ssize_t r1) {
    Py_ssize_t r = r0;
    if (job->m < 4) {
        for (Py_ssize_t i = 0; i < job->m; i++) fast_rows_gemv(job, r0, r1, i);
        return 1;
#ifdef UC_AMX
    } else if (job->xt) {
        if (!fast_part_amx(job, &r, r1)) return 0;
#endif
    } else {
        float *ybuf = malloc((size_t)job->m * 16 * sizeof(float));
        if (!ybuf) return 0;
        for (; r + 16 <= r1; r += 16) fast_block_gemm(job, r, ybuf);
        free(ybuf);
    }
    fast_rows_avx512(job, r, r1);
    return 1;
}
#endif

#ifdef UC_X86
/* Rows r0..r1 of fast mode on AVX2 (no VNNI): each group's codes unpacked once into 16-bit lanes, then per token
 * 16-bit products summed in pairs (vpmaddwd, exact) and reduced; the same fp32 step as every path. */
T_AVX2 static void fast_rows_avx2(const fast_job_t *job, Py_ssize_t r0, Py_ssize_t r1) {
    const weight_t *w = job->w;
    const int g = w->p.group, bits = w->p.bits;
    const Py_ssize_t k = w->k, gpr = k / g, group_bytes = (Py_ssize_t)g * bits / 8;
    const float pow2 = w->p.pow2;
    const __m256i shuf = _mm256_loadu_si256((const __m256i *)shuf_w[bits]);
    const __m256i mul = _mm256_loadu_si256((const __m256i *)mul_w[bits]);
    const uint8_t *end = w->codes + (w->n_rows * gpr) * group_bytes;
    __m256i q[MAX_GROUP / 16];
    for (Py_ssize_t r = r0; r < r1; r++) {
        for (Py_ssize_t i = 0; i < job->m; i++) job->y[i * w->n_rows + r] = 0.0f;
        for (Py_ssize_t b = 0; b < gpr; b++) {
            const Py_ssize_t gi = r * gpr + b;
            const uint8_t *cp = w->codes + gi * group_bytes;
            for (int v = 0; v < g / 16; v++, cp += 2 * bits) {
                __m128i raw;
                if (cp + 16 <= end) raw = _mm_loadu_si128((const __m128i *)cp);
                else {
                    uint8_t t[16] = {0};
                    memcpy(t, cp, (size_t)(2 * bits));
                    raw = _mm_loadu_si128((const __m128i *)t);
                }
                __m256i x = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(raw), shuf);
                q[v] = _mm256_srli_epi16(_mm256_mullo_epi16(x, mul), 16 - bits);
            }
            const float s = f16_to_f32(w->scales[gi]) * pow2;
            const int32_t z = w->zeros[gi];
            for (Py_ssize_t i = 0; i < job->m; i++) {
                const int8_t *xv = job->x8 + 2 * i * k + b * g;
                __m256i acc = _mm256_setzero_si256();
                for (int v = 0; v < g / 16; v++) {  /* c = 128 h + l fits 16 bits; q c summed in pairs fits 32 */
                    const __m256i h = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(xv + 16 * v)));
                    const __m256i l = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(xv + k + 16 * v)));
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(q[v], _mm256_add_epi16(_mm256_slli_epi16(h, 7), l)));
                }
                __m128i h = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
                h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
                h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
                const int32_t d = _mm_cvtsi128_si32(h) - z * job->sum[i * gpr + b];
                float *y = &job->y[i * w->n_rows + r];
                *y = *y + (s * job->scale[i * gpr + b]) * (float)d;
            }
        }
    }
}
#endif

static void fast_rows_scalar(const fast_job_t *job, Py_ssize_t r0, Py_ssize_t r1) {
    const weight_t *w = job->w;
    const int g = w->p.group, bits = w->p.bits;
    const Py_ssize_t k = w->k, gpr = k / g, group_bytes = (Py_ssize_t)g * bits / 8;
    const float pow2 = w->p.pow2;
    for (Py_ssize_t r = r0; r < r1; r++) {
        for (Py_ssize_t i = 0; i < job->m; i++) job->y[i * w->n_rows + r] = 0.0f;
        for (Py_ssize_t b = 0; b < gpr; b++) {
            const Py_ssize_t gi = r * gpr + b;
            const float s = f16_to_f32(w->scales[gi]) * pow2;
            const int32_t z = w->zeros[gi];
            for (Py_ssize_t i = 0; i < job->m; i++) {
                const int32_t d = dot_codes_scalar(w->codes + gi * group_bytes, g, bits, job->x8 + 2 * i * k + b * g, k) -
                                  z * job->sum[i * gpr + b];
                float *y = &job->y[i * w->n_rows + r];
                *y = *y + (s * job->scale[i * gpr + b]) * (float)d;
            }
        }
    }
}

/* The integer dot products are exact on every path and the fp32 steps are the same, so both paths agree bit for bit. */
static void fast_part(void *arg, int part, int parts) {
    fast_job_t *job = arg;
    Py_ssize_t r0, r1;
    rows_of(part, parts, job->w->n_rows, &r0, &r1);
#ifdef UC_X86
    if (job->isa == ISA_AVX512 && job->w->p.group % 64 == 0) {
        if (!fast_part_avx512(job, r0, r1)) job->failed = 1;
    } else if (job->isa >= ISA_AVX2 && job->w->p.group % 16 == 0) {
        fast_rows_avx2(job, r0, r1);
    } else
#endif
        fast_rows_scalar(job, r0, r1);
    if (!job->failed) finish(job->o, job->m, job->w->n_rows, r0, r1);
}

/* ---------------------------------------------------------------- dispatch and the entry points */

static int isa_current = ISA_SCALAR;

/* avx512 here also needs VBMI (vpermb, vpmultishiftqb) and VNNI (vpdpbusd); a CPU without them serves on avx2. */
static int serve_isa_supported(int isa) {
#ifdef UC_X86
    __builtin_cpu_init();
    if (isa == ISA_AVX512)
        return isa_supported(ISA_AVX512) && __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni");
#endif
    return isa_supported(isa);
}

static void release3(Py_buffer bufs[3]) {
    for (int i = 0; i < 3; i++) PyBuffer_Release(&bufs[i]);
}

/* The weight: (codes, scales, zeros, n_rows, k, group, bits, dtype, exponent, rotated, key, period). */
static int parse_weight(PyObject *args, Py_ssize_t first, weight_t *w, Py_buffer bufs[3]) {
    PyObject *t = PyTuple_GetSlice(args, first, first + 12);
    if (!t) return 0;
    int group, bits, dtype, exponent, rotated;
    unsigned long long key, period;
    int ok = PyArg_ParseTuple(t, "y*y*y*nniiiipKK", &bufs[0], &bufs[1], &bufs[2], &w->n_rows, &w->k, &group, &bits,
                              &dtype, &exponent, &rotated, &key, &period);
    Py_DECREF(t);
    if (!ok) return 0;
    Py_ssize_t elems = 0, groups = 0, need = 0;
    const char *bad = NULL;
    memset(&w->p, 0, sizeof w->p);
    if (!setup(&w->p, "packed weight", exponent, group, bits, dtype, rotated, key, (Py_ssize_t)period, &bufs[1])) {
        release3(bufs);
        return 0;
    }
    if (w->n_rows < 1 || w->k < 1) bad = "rows and k must be positive";
    else if (__builtin_mul_overflow(w->n_rows, w->k, &elems) || elems > PY_SSIZE_T_MAX / 4 ||
             (groups = (elems + group - 1) / group, __builtin_mul_overflow(groups, (Py_ssize_t)group * bits / 8, &need)))
        bad = "rows * k: too large";
    else if (bufs[0].len != need || bufs[1].len != 2 * groups || bufs[2].len != groups)
        bad = "codes, scales and zeros must hold exactly ceil(rows * k / group) groups";
    if (bad) {
        release3(bufs);
        PyErr_Format(PyExc_ValueError, "packed weight: %s", bad);
        return 0;
    }
    w->p.codes_end = (const uint8_t *)bufs[0].buf + bufs[0].len;
    w->codes = bufs[0].buf;
    w->scales = bufs[1].buf;
    w->zeros = bufs[2].buf;
    return 1;
}


static int check_threads(int threads) {
    if (threads < 1 || threads > MAX_THREADS) {
        PyErr_Format(PyExc_ValueError, "threads must be 1 to %d", MAX_THREADS);
        return 0;
    }
    return 1;
}

/* An activation or output buffer: C-contiguous float32 ('f'), float16 ('e') or bfloat16 bit patterns ('h'/'H'). */
typedef struct {
    Py_buffer b;
    int dtype;
    Py_ssize_t n;  /* elements */
} act_t;

static int get_act(PyObject *obj, int writable, const char *what, act_t *a) {
    if (PyObject_GetBuffer(obj, &a->b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return 0;
    const char *f = a->b.format ? a->b.format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    a->dtype = !strcmp(f, "f") ? 0 : !strcmp(f, "e") ? 1 : (!strcmp(f, "h") || !strcmp(f, "H")) ? 2 : -1;
    if (a->dtype < 0 || a->b.itemsize != (a->dtype ? 2 : 4) || (uintptr_t)a->b.buf % (uintptr_t)a->b.itemsize) {
        PyErr_Format(PyExc_ValueError, "%s must be float32, float16 or bfloat16 (as int16), aligned", what);
        PyBuffer_Release(&a->b);
        return 0;
    }
    a->n = a->b.len / a->b.itemsize;
    return 1;
}

/* The activations as binary32 (exact conversions): the buffer itself when it is float32, else a copy. */
static float *as_f32(const act_t *a, float **owned) {
    *owned = NULL;
    if (a->dtype == 0) return a->b.buf;
    float *f = malloc((size_t)a->n * sizeof(float));
    if (f) widen(a->dtype, a->b.buf, a->n, f);
    *owned = f;
    return f;
}

/* matmul_exact(x, y, weight, threads, bias=None) and matmul_fast(...): y[m, rows] = x[m, k] W^T (+ bias), x, y and
 * bias in float32, float16 or bfloat16 (m from the length of x), weight the 12-tuple of parse_weight. */
static PyObject *matmul(PyObject *args, int fast) {
    const char *fn = fast ? "matmul_fast" : "matmul_exact";
    PyObject *xo, *yo, *wo, *bo = Py_None;
    int threads;
    if (!PyArg_ParseTuple(args, "OOO!i|O", &xo, &yo, &PyTuple_Type, &wo, &threads, &bo)) return NULL;
    if (PyTuple_GET_SIZE(wo) != 12) return PyErr_Format(PyExc_TypeError, "%s: the weight is a 12-tuple", fn);
    if (!check_threads(threads)) return NULL;
    weight_t w;
    Py_buffer bufs[3];
    if (!parse_weight(wo, 0, &w, bufs)) return NULL;
    act_t x, y, bias;
    int have_x = get_act(xo, 0, "x", &x), have_y = have_x && get_act(yo, 1, "y", &y);
    int have_b = have_y && bo != Py_None && get_act(bo, 0, "bias", &bias);
    const char *bad = NULL;
    Py_ssize_t m = 0;
    if (!have_x || !have_y || (bo != Py_None && !have_b)) bad = "";
    else if (x.n < w.k || x.n % w.k) bad = "x must hold m >= 1 rows of k values";
    else if ((m = x.n / w.k, y.n != m * w.n_rows)) bad = "y must hold m rows of `rows` values";
    else if (have_b && bias.n != w.n_rows) bad = "bias must hold `rows` values";
    else if (fast && (w.k % w.p.group || (w.p.rotated && w.p.period != (uint64_t)w.k)))
        bad = "rows of whole groups and, when rotated, row-shared signs (the scheme's sign period is the row length)";
    else if (fast && !fast_fits(w.p.bits, w.p.group))
        bad = "(2^bits - 1) 16256 group must stay below 2^31 (the integer sums' range)";
    float *xo32 = NULL, *yo32 = NULL, *bo32 = NULL, *x32 = NULL, *b32 = NULL;
    int8_t *x8 = NULL, *xt = NULL;
    float *scale = NULL;
    int32_t *sum = NULL;
    int nomem = 0, failed = 0;
    if (!bad) {
        x32 = as_f32(&x, &xo32);
        b32 = have_b ? as_f32(&bias, &bo32) : NULL;
        output_t out = {y.dtype == 0 ? y.b.buf : (yo32 = malloc((size_t)(m * w.n_rows) * sizeof(float))), y.b.buf, y.dtype, b32};
        const Py_ssize_t gpr = w.k / w.p.group;
        if (fast) {
            x8 = malloc((size_t)(2 * m * w.k));
            scale = malloc((size_t)(m * gpr) * sizeof(float));
            sum = malloc((size_t)(m * gpr) * sizeof(int32_t));
#ifdef UC_AMX
            if (amx_on && isa_current == ISA_AVX512 && m >= 4 && w.p.group % 64 == 0 && w.n_rows >= 16)
                nomem = !(xt = malloc((size_t)(2 * ((m + 15) / 16 * 16) * w.k)));
#endif
        }
        nomem = nomem || !x32 || (have_b && !b32) || !out.y || (fast && !(x8 && scale && sum));
        if (!nomem) {
            const int parts = row_parts(w.n_rows, threads);
            if (fast) {
                fast_job_t job = {&w, x8, xt, scale, sum, out.y, m, isa_current, 0, &out};
                quant_job_t qj = {x32, m, w.k, w.p.group, w.p.rotated, isa_current, w.p.key, w.p.period, x8, scale, sum};
                Py_BEGIN_ALLOW_THREADS
                run_parts(quantize_part, &qj, m < 4 * threads ? (int)m : 4 * threads, threads);
#ifdef UC_AMX
                if (xt) amx_pack_acts(x8, m, w.k, xt);
#endif
                run_parts(fast_part, &job, parts, threads);
                Py_END_ALLOW_THREADS
                failed = job.failed;
            } else {
                exact_job_t job = {&w, x32, out.y, m, isa_current, 0, &out};
                Py_BEGIN_ALLOW_THREADS
                run_parts(exact_part, &job, parts, threads);
                Py_END_ALLOW_THREADS
                failed = job.failed;
            }
        }
    }
    free(xo32);
    free(yo32);
    free(bo32);
    free(x8);
    free(xt);
    free(scale);
    free(sum);
    release3(bufs);
    if (have_x) PyBuffer_Release(&x.b);
    if (have_y) PyBuffer_Release(&y.b);
    if (have_b) PyBuffer_Release(&bias.b);
    if (bad) return *bad ? PyErr_Format(PyExc_ValueError, "%s: %s", fn, bad) : NULL;
    if (nomem || failed) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *matmul_exact(PyObject *self, PyObject *args) { return matmul(args, 0); }
static PyObject *matmul_fast(PyObject *self, PyObject *args) { return matmul(args, 1); }

#ifdef UC_AMX
static int amx_available = 0;  /* the CPU has AMX-INT8 and the kernel lets this process use it */
#endif

static PyObject *set_isa(PyObject *self, PyObject *arg) {
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name) return NULL;
#ifdef UC_AMX
    if (!strcmp(name, "amx")) {
        if (!amx_available) return PyErr_Format(PyExc_ValueError, "set_isa: this CPU (or kernel) lacks amx");
        isa_current = ISA_AVX512;
        amx_on = 1;
        Py_RETURN_NONE;
    }
    amx_on = 0;
#endif
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, isa_names[i])) {
            if (!serve_isa_supported(i)) return PyErr_Format(PyExc_ValueError, "set_isa: this CPU lacks %s", name);
            isa_current = i;
            Py_RETURN_NONE;
        }
    return PyErr_Format(PyExc_ValueError, "set_isa: %R is not one of scalar, avx2, avx512, amx", arg);
}

static PyObject *get_isa(PyObject *self, PyObject *unused) {
#ifdef UC_AMX
    if (amx_on) return PyUnicode_FromString("amx");
#endif
    return PyUnicode_FromString(isa_names[isa_current]);
}

static PyObject *supported_isas(PyObject *self, PyObject *unused) {
    PyObject *out = PyList_New(0);
    for (int i = 0; out && i < 3; i++)
        if (serve_isa_supported(i)) {
            PyObject *s = PyUnicode_FromString(isa_names[i]);
            if (!s || PyList_Append(out, s) < 0) {
                Py_XDECREF(s);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(s);
        }
#ifdef UC_AMX
    if (out && amx_available) {
        PyObject *s = PyUnicode_FromString("amx");
        if (!s || PyList_Append(out, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(s);
    }
#endif
    return out;
}

static PyMethodDef methods[] = {
    {"matmul_exact", matmul_exact, METH_VARARGS, "y = x W^T, W decoded bit for bit, a fixed-order fp32 reduction."},
    {"matmul_fast", matmul_fast, METH_VARARGS, "y = x W^T from 15-bit activations and the packed codes."},
    {"set_isa", set_isa, METH_O, "Force a path: scalar, avx2, avx512 or amx."},
    {"get_isa", get_isa, METH_NOARGS, "The path in use."},
    {"supported_isas", supported_isas, METH_NOARGS, "The paths this CPU has."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT, .m_name = "_serve", .m_doc = "Serving kernels for packed Linear layers.",
    .m_size = -1, .m_methods = methods};

PyMODINIT_FUNC PyInit__serve(void) {
#ifdef UC_X86
    init_tables();
    init_serve_tables();
#endif
    for (int i = 2; i >= 0; i--)
        if (serve_isa_supported(i)) {
            isa_current = i;
            break;
        }
#ifdef UC_AMX
    amx_available = isa_current == ISA_AVX512 && amx_supported();
    amx_on = amx_available;
#endif
    const char *env = getenv("UC_ATTEST_SERVE_ISA");  /* lower the path for tests; never above what the CPU has */
    if (env)
        for (int i = 0; i <= isa_current; i++)
            if (!strcmp(env, isa_names[i])) {
                isa_current = i;
#ifdef UC_AMX
                amx_on = 0;
#endif
            }
    return PyModule_Create(&module);
}
