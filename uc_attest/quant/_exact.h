/* Exact helpers shared by the native decoder (_decode.c) and quantizer (_quantize.c): bit casts, the
 * binary16/bfloat16 conversions (round to nearest even, exact), and the rotation signs (rotation.py sign_of). */
#ifndef UC_EXACT_H
#define UC_EXACT_H
#include <stdint.h>
#include <string.h>

#define MAX_GROUP 1024

static inline float bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float f16_to_f32(uint16_t h) {  /* exact; callers refuse Inf/NaN scales before decoding */
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    if (exp == 0x1F) return bits_to_f32(sign | 0x7F800000u | (man << 13));
    if (exp == 0) {  /* zero or subnormal: man * 2^-24, exact */
        float v = (float)man * bits_to_f32(0x33800000u);
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);  /* quiet NaN (convert() only) */
    u += ((u >> 16) & 1u) + 0x7FFFu;
    return (uint16_t)(u >> 16);
}

static inline uint16_t f32_to_f16(float f) {
    uint32_t x = f32_to_bits(f), sign = (x >> 16) & 0x8000u, h, rem, half;
    x &= 0x7FFFFFFFu;
    if (x > 0x7F800000u) return (uint16_t)(sign | 0x7E00u);
    if (x >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);      /* rounds to infinity */
    if (x < 0x38800000u) {                                         /* half subnormal or zero */
        if (x <= 0x33000000u) return (uint16_t)sign;               /* <= 2^-25: ties to even 0 */
        uint32_t m = (x & 0x7FFFFFu) | 0x800000u, shift = 126u - (x >> 23);
        h = m >> shift; rem = m & ((1u << shift) - 1u); half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    h = (x - 0x38000000u) >> 13; rem = x & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

static inline uint64_t mix64(uint64_t x) {  /* SplitMix64 finalizer (rotation.py sign_of) */
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Sign bitmap of one group: bit j of bm = sign of the group's element j (element index idx + j of the padded
 * tensor, modulo period when period > 0) = bit (i % 64) of mix64(key + i / 64). */
static inline void group_signs(uint64_t *bm, uint64_t key, uint64_t idx, int g, uint64_t period) {
    if (period) idx %= period;
    if (idx % 64 == 0 && g % 64 == 0 && period % 64 == 0) {  /* common case: whole words (period 0 included) */
        for (int w = 0; w < g / 64; w++, idx += 64) {
            if (period && idx == period) idx = 0;
            bm[w] = mix64(key + idx / 64);
        }
        return;
    }
    memset(bm, 0, sizeof(uint64_t) * (size_t)((g + 63) / 64));
    for (int j0 = 0; j0 < g;) {
        uint64_t word = mix64(key + idx / 64) >> (idx % 64);
        int run = 64 - (int)(idx % 64);
        if (run > g - j0) run = g - j0;
        if (period && (uint64_t)run > period - idx) run = (int)(period - idx);
        uint64_t bits = run == 64 ? word : word & ((1ULL << run) - 1);
        int w = j0 / 64, o = j0 % 64;
        bm[w] |= bits << o;
        if (o && run > 64 - o) bm[w + 1] |= bits >> (64 - o);
        j0 += run;
        idx += (uint64_t)run;
        if (period && idx == period) idx = 0;
    }
}

#endif
