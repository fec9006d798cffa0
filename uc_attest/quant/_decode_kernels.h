/* The decoder's kernels (docs/format.md 3.3, 3.5): the scalar, AVX2 + F16C and AVX-512 paths of _decode.c, shared
 * with the serving kernels of uc_attest/runtime/_serve.c (its exact mode decodes rows with them). Every path gives
 * the same bytes; see _decode.c for the contract. Include after Python.h and _exact.h. */
#ifndef UC_DECODE_KERNELS_H
#define UC_DECODE_KERNELS_H

/* What every kernel needs to decode a run of consecutive groups of one tensor. */
typedef struct {
    int group, bits, k, dtype, rotated;  /* dtype: 0 F32, 1 F16, 2 BF16 */
    float pow2;                          /* 2^(e + shift), shift = k/2 - k when rotated else 0 */
    uint64_t key, period;                /* sign key; period > 0: row-shared signs (index mod period) */
    const uint8_t *codes_end;            /* one past the last code byte: vector loads never read beyond it */
} params_t;

/* Signature of a kernel: decode `ngroups` groups starting at group `gidx` of the tensor (codes/scales/zeros
 * point at that group), writing `n` <= ngroups * group elements (the tensor's tail is cut) to out. */
typedef void (*kernel_t)(const params_t *, const uint8_t *, const uint16_t *, const uint8_t *, uint64_t,
                         Py_ssize_t, Py_ssize_t, uint8_t *);

/* ---------------------------------------------------------------- scalar (portable) */

/* Unnormalized Walsh-Hadamard transform in place (butterfly order h = 1, 2, 4, ...), exact in int32. */
static inline void fwht_i32(int32_t *restrict v, int n) {
    for (int i = 0; i < n; i += 2) { int32_t x = v[i], y = v[i + 1]; v[i] = x + y; v[i + 1] = x - y; }  /* h = 1 */
    for (int h = 2; h < n; h <<= 1)
        for (int i = 0; i < n; i += h << 1) {
            int32_t *restrict a = v + i, *restrict b = v + i + h;
            for (int j = 0; j < h; j++) { int32_t x = a[j], y = b[j]; a[j] = x + y; b[j] = x - y; }
        }
}

static void store_group(int dtype, const float *buf, Py_ssize_t n, uint8_t *out) {
    if (dtype == 0) memcpy(out, buf, (size_t)n * 4);
    else if (dtype == 1) { uint16_t *o = (uint16_t *)out; for (Py_ssize_t i = 0; i < n; i++) o[i] = f32_to_f16(buf[i]); }
    else { uint16_t *o = (uint16_t *)out; for (Py_ssize_t i = 0; i < n; i++) o[i] = f32_to_bf16(buf[i]); }
}

static void kernel_scalar(const params_t *p, const uint8_t *cp, const uint16_t *sp, const uint8_t *zp, uint64_t gidx,
                          Py_ssize_t ngroups, Py_ssize_t n, uint8_t *out) {
    /* parameters copied to locals: stores through `out` (uint8_t, may alias anything) must not force reloads */
    const int g = p->group, bits = p->bits, dtype = p->dtype, rotated = p->rotated, osize = dtype == 0 ? 4 : 2;
    const uint64_t mask = (1u << bits) - 1u, key = p->key, period = p->period;
    const float pow2 = p->pow2;
    float buf[MAX_GROUP];
    int32_t ibuf[MAX_GROUP];
    uint64_t bm[MAX_GROUP / 64];
    for (Py_ssize_t gi = 0; gi < ngroups; gi++, cp += (size_t)g * bits / 8) {
        const float s = f16_to_f32(sp[gi]) * pow2;
        const int z = zp[gi];
        const uint8_t *gp = cp;
        for (int c8 = 0; c8 < g; c8 += 8, gp += bits) {  /* 8 codes = `bits` whole bytes */
            uint64_t word = 0;
            memcpy(&word, gp, (size_t)bits);  /* little-endian host (checked in Python) */
            for (int j = 0; j < 8; j++) ibuf[c8 + j] = (int32_t)((word >> (bits * j)) & mask) - z;
        }
        if (rotated) {  /* integer Walsh-Hadamard, exact product, then the sign as an xor of the sign bit */
            fwht_i32(ibuf, g);
            group_signs(bm, key, (gidx + (uint64_t)gi) * (uint64_t)g, g, period);
            for (int j = 0; j < g; j++)
                buf[j] = bits_to_f32(f32_to_bits((float)ibuf[j] * s) ^ ((uint32_t)((bm[j / 64] >> (j % 64)) & 1u) << 31));
        } else {
            for (int j = 0; j < g; j++) buf[j] = (float)ibuf[j] * s;
        }
        Py_ssize_t left = n - gi * g;
        store_group(dtype, buf, left < g ? left : g, out + gi * g * osize);
    }
}

#ifdef UC_X86
/* ---------------------------------------------------------------- AVX2 + F16C (8 lanes) */

/* Byte-shuffle and shift tables to unpack codes: code j (of 8 or 16) starts at bit b*j = byte o, bit s;
 * its bits lie in bytes o and o + 1, which the shuffle puts in the low 16 bits of lane j. */
static uint8_t shuf8[9][32], shuf16[9][64];
static uint32_t shift16[9][16];

static void init_tables(void) {
    for (int b = 2; b <= 8; b++)
        for (int j = 0; j < 16; j++) {
            int o = (b * j) >> 3;
            shift16[b][j] = (uint32_t)((b * j) & 7);
            uint8_t *e16 = &shuf16[b][4 * j];
            e16[0] = (uint8_t)o; e16[1] = o + 1 < 16 ? (uint8_t)(o + 1) : 0x80; e16[2] = e16[3] = 0x80;
            if (j < 8) {  /* AVX2: the 8 bytes of 8 codes are broadcast to both 128-bit halves */
                uint8_t *e8 = &shuf8[b][4 * j];
                e8[0] = (uint8_t)o; e8[1] = (uint8_t)(o + 1); e8[2] = e8[3] = 0x80;
            }
        }
}

#define T_AVX2 __attribute__((target("avx2,f16c")))

/* Stages h = 1, 2, 4 inside one vector (partner lanes by shuffles): the lower lane gets a + b, the upper a - b. */
T_AVX2 static inline __m256i fwht8_in_register(__m256i v) {
    __m256i p = _mm256_shuffle_epi32(v, 0xB1);                        /* h = 1 */
    v = _mm256_blend_epi32(_mm256_add_epi32(v, p), _mm256_sub_epi32(p, v), 0xAA);
    p = _mm256_shuffle_epi32(v, 0x4E);                                /* h = 2 */
    v = _mm256_blend_epi32(_mm256_add_epi32(v, p), _mm256_sub_epi32(p, v), 0xCC);
    p = _mm256_permute2x128_si256(v, v, 0x01);                        /* h = 4 */
    return _mm256_blend_epi32(_mm256_add_epi32(v, p), _mm256_sub_epi32(p, v), 0xF0);
}

/* Butterflies with partner at distance h >= lanes: whole vectors, in the group's int32 buffer (L1). */
T_AVX2 static inline void fwht_vectors_avx2(int32_t *v, int g) {
    for (int h = 8; h < g; h <<= 1)
        for (int i = 0; i < g; i += h << 1)
            for (int j = i; j < i + h; j += 8) {
                __m256i a = _mm256_load_si256((const __m256i *)(v + j)), b = _mm256_load_si256((const __m256i *)(v + j + h));
                _mm256_store_si256((__m256i *)(v + j), _mm256_add_epi32(a, b));
                _mm256_store_si256((__m256i *)(v + j + h), _mm256_sub_epi32(a, b));
            }
}

/* 8 codes (b bytes at gp) minus z as int32 lanes. */
T_AVX2 static inline __m256i unpack8(const uint8_t *gp, const uint8_t *end, int bits, __m256i shuf, __m256i shifts,
                                     __m256i mask, __m256i z) {
    int64_t word = 0;
    if (gp + 8 <= end) memcpy(&word, gp, 8);
    else memcpy(&word, gp, (size_t)bits);  /* last bytes of the buffer: never read past it */
    __m256i x = _mm256_broadcastsi128_si256(_mm_cvtsi64_si128(word));
    x = _mm256_srlv_epi32(_mm256_shuffle_epi8(x, shuf), shifts);
    return _mm256_sub_epi32(_mm256_and_si256(x, mask), z);
}

/* Convert 8 binary32 values and store them (the only rounding). */
T_AVX2 static inline void store8(int dtype, __m256 f, uint8_t *o) {
    if (dtype == 0) { _mm256_storeu_ps((float *)o, f); return; }
    if (dtype == 1) { _mm_storeu_si128((__m128i *)o, _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT)); return; }
    __m256i u = _mm256_castps_si256(f);  /* bf16: round to nearest even on the bit pattern (values are finite) */
    u = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1)),
                                             _mm256_set1_epi32(0x7FFF)));
    u = _mm256_srli_epi32(u, 16);
    _mm_storeu_si128((__m128i *)o, _mm_packus_epi32(_mm256_castsi256_si128(u), _mm256_extracti128_si256(u, 1)));
}

T_AVX2 static void kernel_avx2(const params_t *p, const uint8_t *cp, const uint16_t *sp, const uint8_t *zp,
                               uint64_t gidx, Py_ssize_t ngroups, Py_ssize_t n, uint8_t *out) {
    const int g = p->group, bits = p->bits, dtype = p->dtype, rotated = p->rotated, osize = dtype == 0 ? 4 : 2;
    const uint64_t key = p->key, period = p->period;
    const float pow2 = p->pow2;
    const uint8_t *end = p->codes_end;
    const __m256i shuf = _mm256_loadu_si256((const __m256i *)shuf8[bits]);
    const __m256i shifts = _mm256_loadu_si256((const __m256i *)shift16[bits]);
    const __m256i mask = _mm256_set1_epi32((1 << bits) - 1);
    const __m256i lane_shift = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24), sign = _mm256_set1_epi32((int)0x80000000u);
    _Alignas(32) int32_t ibuf[MAX_GROUP];
    _Alignas(32) uint8_t tail[MAX_GROUP * 4];
    uint64_t bm[MAX_GROUP / 64];
    for (Py_ssize_t gi = 0; gi < ngroups; gi++, cp += (size_t)g * bits / 8) {
        const __m256 s = _mm256_set1_ps(f16_to_f32(sp[gi]) * pow2);
        const __m256i z = _mm256_set1_epi32(zp[gi]);
        const uint8_t *gp = cp;
        for (int j = 0; j < g; j += 8, gp += bits) {
            __m256i v = unpack8(gp, end, bits, shuf, shifts, mask, z);
            if (rotated) v = fwht8_in_register(v);  /* stages h = 1, 2, 4 (g >= 8) */
            _mm256_store_si256((__m256i *)(ibuf + j), v);
        }
        if (rotated) {
            fwht_vectors_avx2(ibuf, g);  /* stages h = 8 ... g/2 */
            group_signs(bm, key, (gidx + (uint64_t)gi) * (uint64_t)g, g, period);
        }
        Py_ssize_t left = n - gi * g;
        uint8_t *o = left < g ? tail : out + gi * g * osize;
        for (int j = 0; j < g; j += 8) {
            __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_load_si256((const __m256i *)(ibuf + j))), s);  /* exact */
            if (rotated) {  /* lane l takes sign bit j + l of the bitmap */
                __m256i sb = _mm256_set1_epi32((int)((bm[j / 64] >> (j % 64)) & 0xFF));
                sb = _mm256_and_si256(_mm256_sllv_epi32(sb, lane_shift), sign);
                f = _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(f), sb));
            }
            store8(dtype, f, o + j * osize);
        }
        if (left < g) memcpy(out + gi * g * osize, tail, (size_t)left * osize);
    }
}

/* ---------------------------------------------------------------- AVX-512 F/BW/VL (16 lanes) */

#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,f16c")))

T_AVX512 static inline __m512i bfly16(__m512i v, __m512i partner, __mmask16 upper) {
    return _mm512_mask_sub_epi32(_mm512_add_epi32(v, partner), upper, partner, v);  /* lower: a + b, upper: a - b */
}

T_AVX512 static inline __m512i fwht16_in_register(__m512i v) {  /* stages h = 1, 2, 4, 8 (g >= 16) */
    v = bfly16(v, _mm512_shuffle_epi32(v, (_MM_PERM_ENUM)0xB1), 0xAAAA);
    v = bfly16(v, _mm512_shuffle_epi32(v, (_MM_PERM_ENUM)0x4E), 0xCCCC);
    v = bfly16(v, _mm512_shuffle_i32x4(v, v, 0xB1), 0xF0F0);
    return bfly16(v, _mm512_shuffle_i32x4(v, v, 0x4E), 0xFF00);
}

T_AVX512 static inline void fwht_vectors_avx512(int32_t *v, int g) {
    for (int h = 16; h < g; h <<= 1)
        for (int i = 0; i < g; i += h << 1)
            for (int j = i; j < i + h; j += 16) {
                __m512i a = _mm512_load_si512(v + j), b = _mm512_load_si512(v + j + h);
                _mm512_store_si512(v + j, _mm512_add_epi32(a, b));
                _mm512_store_si512(v + j + h, _mm512_sub_epi32(a, b));
            }
}

T_AVX512 static inline void store16(int dtype, __m512 f, uint8_t *o) {
    if (dtype == 0) { _mm512_storeu_ps(o, f); return; }
    if (dtype == 1) { _mm256_storeu_si256((__m256i *)o, _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT)); return; }
    __m512i u = _mm512_castps_si512(f);  /* bf16: round to nearest even on the bit pattern (values are finite) */
    u = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)),
                                             _mm512_set1_epi32(0x7FFF)));
    _mm256_storeu_si256((__m256i *)o, _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
}

/* 16 codes (2 * bits bytes at gp) minus z as int32 lanes. */
T_AVX512 static inline __m512i unpack16(const uint8_t *gp, const uint8_t *end, int bits, __m512i shuf, __m512i shifts,
                                        __m512i mask, __m512i z) {
    __m128i raw;
    if (gp + 16 <= end) raw = _mm_loadu_si128((const __m128i *)gp);
    else { uint8_t t[16] = {0}; memcpy(t, gp, (size_t)(2 * bits)); raw = _mm_loadu_si128((const __m128i *)t); }
    __m512i x = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(raw), shuf);
    return _mm512_sub_epi32(_mm512_and_si512(_mm512_srlv_epi32(x, shifts), mask), z);
}

/* The default group size (128, rotated): the whole group stays in 8 registers from the codes to the output. */
T_AVX512 static inline void rotated128_avx512(const uint8_t *gp, const uint8_t *end, int bits, int dtype, float s32,
                                              int z32, uint64_t key, uint64_t idx, uint64_t period, __m512i shuf,
                                              __m512i shifts, __m512i mask, uint8_t *o) {
    const __m512i z = _mm512_set1_epi32(z32), sign = _mm512_set1_epi32((int)0x80000000u);
    const __m512 s = _mm512_set1_ps(s32);
    const int osize = dtype == 0 ? 4 : 2;
    __m512i v[8];
    for (int j = 0; j < 8; j++) v[j] = fwht16_in_register(unpack16(gp + 2 * bits * j, end, bits, shuf, shifts, mask, z));
    for (int h = 1; h < 8; h <<= 1)  /* stages 16, 32, 64: whole registers */
        for (int i = 0; i < 8; i += h << 1)
            for (int j = i; j < i + h; j++) {
                __m512i a = v[j], b = v[j + h];
                v[j] = _mm512_add_epi32(a, b);
                v[j + h] = _mm512_sub_epi32(a, b);
            }
    uint64_t bm[2];
    group_signs(bm, key, idx, 128, period);
    for (int j = 0; j < 8; j++) {
        __m512i u = _mm512_castps_si512(_mm512_mul_ps(_mm512_cvtepi32_ps(v[j]), s));  /* exact */
        __mmask16 m = (__mmask16)((bm[j / 4] >> (16 * (j % 4))) & 0xFFFF);
        store16(dtype, _mm512_castsi512_ps(_mm512_mask_xor_epi32(u, m, u, sign)), o + 16 * j * osize);
    }
}

T_AVX512 static void kernel_avx512(const params_t *p, const uint8_t *cp, const uint16_t *sp, const uint8_t *zp,
                                   uint64_t gidx, Py_ssize_t ngroups, Py_ssize_t n, uint8_t *out) {
    const int g = p->group, bits = p->bits, dtype = p->dtype, rotated = p->rotated, osize = dtype == 0 ? 4 : 2;
    const uint64_t key = p->key, period = p->period;
    const float pow2 = p->pow2;
    const uint8_t *end = p->codes_end;
    const __m512i shuf = _mm512_loadu_si512(shuf16[bits]);
    const __m512i shifts = _mm512_loadu_si512(shift16[bits]);
    const __m512i mask = _mm512_set1_epi32((1 << bits) - 1), sign = _mm512_set1_epi32((int)0x80000000u);
    _Alignas(64) int32_t ibuf[MAX_GROUP];
    _Alignas(64) uint8_t tail[MAX_GROUP * 4];
    uint64_t bm[MAX_GROUP / 64];
    for (Py_ssize_t gi = 0; gi < ngroups; gi++, cp += (size_t)g * bits / 8) {
        Py_ssize_t left = n - gi * g;
        if (g == 128 && rotated && left >= g) {
            rotated128_avx512(cp, end, bits, dtype, f16_to_f32(sp[gi]) * pow2, zp[gi], key, (gidx + (uint64_t)gi) * 128u,
                              period, shuf, shifts, mask, out + gi * g * osize);
            continue;
        }
        const __m512 s = _mm512_set1_ps(f16_to_f32(sp[gi]) * pow2);
        const __m512i z = _mm512_set1_epi32(zp[gi]);
        const uint8_t *gp = cp;
        for (int j = 0; j < g; j += 16, gp += 2 * bits) {  /* 16 codes = 2 * bits bytes */
            __m512i v = unpack16(gp, end, bits, shuf, shifts, mask, z);
            if (rotated) v = fwht16_in_register(v);
            _mm512_store_si512(ibuf + j, v);
        }
        if (rotated) {
            fwht_vectors_avx512(ibuf, g);  /* stages h = 16 ... g/2 */
            group_signs(bm, key, (gidx + (uint64_t)gi) * (uint64_t)g, g, period);
        }
        uint8_t *o = left < g ? tail : out + gi * g * osize;
        for (int j = 0; j < g; j += 16) {
            __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(ibuf + j)), s);  /* exact */
            if (rotated) {  /* sign = xor of the sign bit where the bitmap says -1 */
                __mmask16 m = (__mmask16)((bm[j / 64] >> (j % 64)) & 0xFFFF);
                __m512i u = _mm512_castps_si512(f);
                f = _mm512_castsi512_ps(_mm512_mask_xor_epi32(u, m, u, sign));
            }
            store16(dtype, f, o + j * osize);
        }
        if (left < g) memcpy(out + gi * g * osize, tail, (size_t)left * osize);
    }
}
#endif /* UC_X86 */

/* ---------------------------------------------------------------- dispatch */

enum { ISA_SCALAR = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };
static const char *isa_names[] __attribute__((unused)) = {"scalar", "avx2", "avx512"};

__attribute__((unused)) static int isa_supported(int isa) {
    if (isa == ISA_SCALAR) return 1;
#ifdef UC_X86
    __builtin_cpu_init();
    if (isa == ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    if (isa == ISA_AVX512)
        return isa_supported(ISA_AVX2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl");
#endif
    return 0;
}

/* Parameter checks shared by the entry points (the decoder's and the serving kernels'); fills p. Returns 0 with ValueError naming the parameter. */
/* No scale is inf or NaN (exponent bits all ones). Four fp16 patterns a 64-bit word, no early exit (the loop
 * vectorizes; every call of the serving kernels checks its weight's scales): per 16-bit lane, t = (s & E) ^ E is
 * zero exactly for a non-finite s and at most 0x7C00, so t + 0x7FFF carries into bit 15 unless t is zero. */
static int scales_finite(const uint16_t *sp, Py_ssize_t n) {
    const uint64_t E = 0x7C007C007C007C00ull, H = 0x8000800080008000ull, ONES = 0x7FFF7FFF7FFF7FFFull;
    uint64_t all = H;
    Py_ssize_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint64_t w;
        memcpy(&w, sp + i, sizeof w);
        all &= ((w & E) ^ E) + ONES;
    }
    for (; i < n; i++)
        if ((sp[i] & 0x7C00u) == 0x7C00u) return 0;
    return (all & H) == H;
}

__attribute__((unused)) static int setup(params_t *p, const char *fn, int exponent, int group, int bits, int dtype, int rotated,
                 unsigned long long key, Py_ssize_t period, const Py_buffer *scales) {
    int k = 0;
    while (k < 11 && (1 << k) < group) k++;
    const char *bad = NULL;
    if (bits < 2 || bits > 8) bad = "bits must be 2 to 8";
    else if (group <= 0 || group % 8 != 0 || group > MAX_GROUP) bad = "group must be a positive multiple of 8, at most 1024";
    else if (exponent < -90 || exponent > 100) bad = "exponent must be in [-90, 100]";
    else if (dtype < 0 || dtype > 2) bad = "dtype must be 0 (F32), 1 (F16) or 2 (BF16)";
    else if (rotated && ((1 << k) != group || bits + k > 13)) bad = "rotated: group must be a power of two and bits + log2(group) <= 13";
    else if (period < 0) bad = "period must be >= 0";
    else if (period != 0 && period % group != 0 && group % period != 0) bad = "period must be 0, a multiple or a divisor of group";
    else if ((uintptr_t)scales->buf % 2 != 0) bad = "scales must be 2-byte aligned (fp16 bit patterns)";
    if (bad) { PyErr_Format(PyExc_ValueError, "%s: %s", fn, bad); return 0; }
    if (!scales_finite(scales->buf, scales->len / 2)) { PyErr_Format(PyExc_ValueError, "%s: non-finite scale", fn); return 0; }
    const int shift = rotated ? k / 2 - k : 0;
    p->group = group; p->bits = bits; p->k = k; p->dtype = dtype; p->rotated = rotated;
    p->pow2 = bits_to_f32((uint32_t)(exponent + shift + 127) << 23);
    p->key = (uint64_t)key; p->period = (uint64_t)period;
    return 1;
}

static kernel_t pick_kernel(const params_t *p, int isa) {
#ifdef UC_X86
    if (isa == ISA_AVX512 && p->group % 16 == 0) return kernel_avx512;
    if (isa >= ISA_AVX2) return kernel_avx2;  /* groups are multiples of 8 */
#else
    (void)p;
    (void)isa;
#endif
    return kernel_scalar;
}


#endif
