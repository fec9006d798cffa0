/* Native host decoder of the reconstruction contract (docs/format.md 3.3).
 *
 *   w = to_dtype( fp32(q - z) * S ),  S = fp32(s16) * 2^e
 *
 * Every step is exact in binary32 (|q - z| <= 255, s16 has an 11-bit significand,
 * e in [-100, 100]); the only rounding is the final conversion, done here on the
 * bit pattern (round to nearest, ties to even). No addition follows a multiplication;
 * built with -ffp-contract=off anyway. Optional: uc_attest.quant.decode falls back to
 * NumPy when this module is not compiled, and the tests compare both bit for bit.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static inline float bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float f16_to_f32(uint16_t h) {
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
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);  /* quiet NaN */
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

/* Unnormalized Walsh-Hadamard transform in place (butterfly order h = 1, 2, 4, ...), exact in int32. */
static inline void fwht_i32(int32_t *restrict v, int n) {
    for (int i = 0; i < n; i += 2) { int32_t x = v[i], y = v[i + 1]; v[i] = x + y; v[i + 1] = x - y; }
    for (int h = 2; h < n; h <<= 1)
        for (int i = 0; i < n; i += h << 1) {
            int32_t *restrict a = v + i, *restrict b = v + i + h;
            for (int j = 0; j < h; j++) { int32_t x = a[j], y = b[j]; a[j] = x + y; b[j] = x - y; }
        }
}

static inline uint64_t mix64(uint64_t x) {  /* SplitMix64 finalizer (rotation.py sign_of) */
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* decode(codes, scales_f16_bits, zeros, exponent, rows, cols, group, bits, dtype, out, rotated, key, first_group,
 *        period)
 * rotated: integer Hadamard of q - z, then the sign of padded element i = bit i%64 of mix64(key + i/64),
 * i counted from first_group * group (rows are a run of groups of one tensor); with period > 0 (the row
 * length, a multiple or a divisor of group: row-shared signs) i is taken modulo period. */
static PyObject *decode(PyObject *self, PyObject *args) {
    Py_buffer codes, scales, zeros, out;
    int exponent, group, bits, dtype, rotated;
    unsigned long long key;
    Py_ssize_t rows, cols, first_group, period;
    if (!PyArg_ParseTuple(args, "y*y*y*inniiiw*pKnn", &codes, &scales, &zeros, &exponent, &rows, &cols, &group,
                          &bits, &dtype, &out, &rotated, &key, &first_group, &period))
        return NULL;
    int k = 0;
    while ((1 << k) < group) k++;
    Py_ssize_t groups = (cols + group - 1) / group, row_codes = groups * group;
    Py_ssize_t osize = dtype == 0 ? 4 : 2;
    int ok = bits >= 2 && bits <= 8 && group > 0 && group % 8 == 0 && group <= 1024 && exponent >= -90 && exponent <= 100 &&
             dtype >= 0 && dtype <= 2 && codes.len == rows * row_codes * bits / 8 &&
             scales.len == rows * groups * 2 && zeros.len == rows * groups && out.len == rows * cols * osize &&
             (!rotated || ((1 << k) == group && bits + k <= 13)) && period >= 0 &&
             (period == 0 || period % group == 0 || group % period == 0);
    if (ok) {
        const uint8_t *cp = codes.buf, *zp = zeros.buf;
        const uint16_t *sp = scales.buf;
        uint8_t *op = out.buf;
        const int shift = rotated ? k / 2 - k : 0;
        const float pow2e = bits_to_f32((uint32_t)(exponent + shift + 127) << 23);
        const uint64_t mask = (1u << bits) - 1u;
        float buf[1024];
        int32_t ibuf[1024];
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t r = 0; r < rows; r++) {
            for (Py_ssize_t gi = 0; gi < groups; gi++) {
                const float s = f16_to_f32(sp[r * groups + gi]) * pow2e;
                const int z = zp[r * groups + gi];
                /* a group starts at a code index that is a multiple of 8: 8 codes = `bits` whole bytes */
                const uint8_t *gp = cp + (r * row_codes + gi * group) / 8 * bits;
                for (int c8 = 0; c8 < group; c8 += 8, gp += bits) {
                    uint64_t word = 0;
                    memcpy(&word, gp, (size_t)bits);  /* little-endian host (checked in Python) */
                    for (int j = 0; j < 8; j++) ibuf[c8 + j] = (int32_t)((word >> (bits * j)) & mask) - z;
                }
                if (rotated) {  /* unnormalized Walsh-Hadamard (exact in int32), then signs */
                    fwht_i32(ibuf, group);
                    uint64_t idx = (uint64_t)((first_group + r * groups + gi) * group);
                    if (period) idx %= (uint64_t)period;  /* groups start on a row; a group may hold several rows */
                    for (int j0 = 0; j0 < group;) {
                        uint64_t word = mix64((uint64_t)key + idx / 64) >> (idx % 64);
                        int run = 64 - (int)(idx % 64);
                        if (run > group - j0) run = group - j0;
                        if (period && (uint64_t)run > (uint64_t)period - idx) run = (int)((uint64_t)period - idx);
                        for (int j = 0; j < run; j++) {  /* sign flip = xor of the float sign bit: exact */
                            uint32_t u = f32_to_bits((float)ibuf[j0 + j] * s) ^ ((uint32_t)((word >> j) & 1u) << 31);
                            buf[j0 + j] = bits_to_f32(u);
                        }
                        j0 += run;
                        idx += (uint64_t)run;
                        if (period && idx == (uint64_t)period) idx = 0;
                    }
                } else {
                    for (int j = 0; j < group; j++) buf[j] = (float)ibuf[j] * s;
                }
                Py_ssize_t c0 = gi * group, n = c0 + group < cols ? group : cols - c0;
                if (dtype == 0) memcpy(op + (r * cols + c0) * 4, buf, (size_t)n * 4);
                else if (dtype == 1) { uint16_t *o = (uint16_t *)(op + (r * cols + c0) * 2); for (Py_ssize_t i = 0; i < n; i++) o[i] = f32_to_f16(buf[i]); }
                else { uint16_t *o = (uint16_t *)(op + (r * cols + c0) * 2); for (Py_ssize_t i = 0; i < n; i++) o[i] = f32_to_bf16(buf[i]); }
            }
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&codes); PyBuffer_Release(&scales); PyBuffer_Release(&zeros); PyBuffer_Release(&out);
    if (!ok) { PyErr_SetString(PyExc_ValueError, "decode: inconsistent sizes or parameters"); return NULL; }
    Py_RETURN_NONE;
}

/* f32 -> f16 / bf16 bit conversion of a float32 buffer, exposed for tests. */
static PyObject *convert(PyObject *self, PyObject *args) {
    Py_buffer in, out;
    int dtype;
    if (!PyArg_ParseTuple(args, "y*iw*", &in, &dtype, &out)) return NULL;
    int ok = in.len % 4 == 0 && out.len == in.len / 2 && (dtype == 1 || dtype == 2);
    if (ok) {
        const float *ip = in.buf; uint16_t *op = out.buf;
        for (Py_ssize_t i = 0; i < in.len / 4; i++) op[i] = dtype == 1 ? f32_to_f16(ip[i]) : f32_to_bf16(ip[i]);
    }
    PyBuffer_Release(&in); PyBuffer_Release(&out);
    if (!ok) { PyErr_SetString(PyExc_ValueError, "convert: bad sizes"); return NULL; }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_VARARGS, "Decode a block of rows into out (see uc_attest.quant.decode)."},
    {"convert", convert, METH_VARARGS, "float32 -> float16 (1) or bfloat16 (2) bit patterns."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_decode", NULL, -1, methods};

PyMODINIT_FUNC PyInit__decode(void) { return PyModule_Create(&module); }
