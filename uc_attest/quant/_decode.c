/* Native host decoder of the reconstruction contract (docs/format.md 3.3, 3.5).
 *
 *   unrotated:  w = to_dtype( fp32(q - z) * S ),                       S = fp32(s16) * 2^e
 *   rotated:    w = to_dtype( D * ( fp32(H_g(q - z)) * S ) ),          S = fp32(s16) * 2^(e + k/2 - k)
 *
 * Every step is exact: |q - z| <= 255; H_g(q - z) is an integer below 2^13 (the scheme requires
 * b + k <= 13) computed here in int32; its product with s16 (11-bit significand) has at most 24
 * significant bits and stays in the normal binary32 range (e in [-90, 100]); the sign D is an xor of
 * the sign bit. The only rounding is the final conversion to BF16 / F16 (round to nearest, ties to even).
 * No addition follows a multiplication; built with -ffp-contract=off -fno-fast-math anyway.
 *
 * Three implementations of the same steps, chosen at run time (DESIGN section 3: SIMD only for
 * elementwise IEEE operations and exact integer arithmetic, every path tested bit for bit against the
 * reference decoders, tests/unit/test_decode_native.py):
 *   scalar  portable C, any CPU;
 *   avx2    8 int32 lanes (AVX2 + F16C), per-function target attributes so the module builds with plain -O3;
 *   avx512  16 int32 lanes (AVX-512 F/BW/VL), used when the group size is a multiple of 16 (else avx2).
 * (aarch64: the scalar path, which GCC auto-vectorises for NEON; a hand-written NEON path is not written yet.)
 * The choice: the best the CPU supports, or UC_ATTEST_DECODE_ISA=scalar|avx2|avx512 at import, or set_isa().
 *
 * Work runs outside the GIL. decode_hash() decodes a tensor chunk by chunk into small bytes objects and feeds each
 * chunk to a hashlib object while it is still in cache; hashlib's update releases the GIL too.
 * Optional: uc_attest.quant.decode falls back to NumPy when this module is not compiled (same bytes, tested).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define UC_X86 1
#include <immintrin.h>
#endif

#include "_exact.h"

#include "_decode_kernels.h"

static int isa_current = ISA_SCALAR;

/* ---------------------------------------------------------------- argument checks
 * The entry points guard themselves (the Python wrapper checks too, but they can be called directly): every
 * size is checked non-negative, every product of sizes is computed with an overflow check, every buffer must
 * have exactly the length the sizes imply, and every NULL return has an exception set naming the argument. */

#if defined(__GNUC__) || defined(__clang__)
#define SIZE_MUL_OVERFLOWS(a, b, r) __builtin_mul_overflow((a), (b), (r))
#define SIZE_ADD_OVERFLOWS(a, b, r) __builtin_add_overflow((a), (b), (r))
#else  /* portable fallbacks; the operands are sizes already checked >= 0 */
static int size_mul_overflows(Py_ssize_t a, Py_ssize_t b, Py_ssize_t *r) {
    if (b && a > PY_SSIZE_T_MAX / b) return 1;
    *r = a * b;
    return 0;
}
static int size_add_overflows(Py_ssize_t a, Py_ssize_t b, Py_ssize_t *r) {
    if (a > PY_SSIZE_T_MAX - b) return 1;
    *r = a + b;
    return 0;
}
#define SIZE_MUL_OVERFLOWS(a, b, r) size_mul_overflows((a), (b), (r))
#define SIZE_ADD_OVERFLOWS(a, b, r) size_add_overflows((a), (b), (r))
#endif

/* *r = a * b (sizes >= 0); 0 and OverflowError naming `what` when the product does not fit a Py_ssize_t. */
static int size_mul(Py_ssize_t *r, Py_ssize_t a, Py_ssize_t b, const char *fn, const char *what) {
    if (!SIZE_MUL_OVERFLOWS(a, b, r)) return 1;
    PyErr_Format(PyExc_OverflowError, "%s: %s is too large (the size it implies overflows)", fn, what);
    return 0;
}

static int size_add(Py_ssize_t *r, Py_ssize_t a, Py_ssize_t b, const char *fn, const char *what) {
    if (!SIZE_ADD_OVERFLOWS(a, b, r)) return 1;
    PyErr_Format(PyExc_OverflowError, "%s: %s is too large (the size it implies overflows)", fn, what);
    return 0;
}

static int at_least(Py_ssize_t v, Py_ssize_t min, const char *fn, const char *name) {
    if (v >= min) return 1;
    PyErr_Format(PyExc_ValueError, "%s: %s must be >= %zd, got %zd", fn, name, min, v);
    return 0;
}

static int has_len(const Py_buffer *b, Py_ssize_t want, const char *fn, const char *name, const char *how) {
    if (b->len == want) return 1;
    PyErr_Format(PyExc_ValueError, "%s: %s has %zd bytes, expected %zd (%s)", fn, name, b->len, want, how);
    return 0;
}

/* decode(codes, scales_f16_bits, zeros, exponent, rows, cols, group, bits, dtype, out, rotated, key, first_group,
 *        period)
 * rows of `cols` elements, each padded to whole groups; group indices (for the signs) count from first_group.
 * rotated: integer Hadamard of q - z, then the sign of padded element i = bit i%64 of mix64(key + i/64); with
 * period > 0 (a multiple or a divisor of group: row-shared signs) i is taken modulo period. */
static PyObject *decode(PyObject *self, PyObject *args) {
    static const char fn[] = "decode";
    Py_buffer codes, scales, zeros, out;
    int exponent, group, bits, dtype, rotated;
    unsigned long long key;
    Py_ssize_t rows, cols, first_group, period;
    if (!PyArg_ParseTuple(args, "y*y*y*inniiiw*pKnn", &codes, &scales, &zeros, &exponent, &rows, &cols, &group,
                          &bits, &dtype, &out, &rotated, &key, &first_group, &period))
        return NULL;
    params_t p;
    Py_ssize_t groups = 0, row_bytes = 0, all_groups = 0, need = 0, last = 0;
    const Py_ssize_t osize = dtype == 0 ? 4 : 2;
    int ok = setup(&p, fn, exponent, group, bits, dtype, rotated, key, period, &scales) &&
             at_least(rows, 0, fn, "rows") && at_least(cols, 0, fn, "cols") && at_least(first_group, 0, fn, "first_group");
    if (ok) {
        groups = cols / group + (cols % group != 0);  /* groups per row, rounded up without overflow */
        Py_ssize_t code_bytes = 0, scale_bytes = 0, out_bytes = 0;
        ok = size_mul(&row_bytes, groups, group * bits / 8, fn, "cols") &&
             size_mul(&code_bytes, rows, row_bytes, fn, "rows * cols") &&
             size_mul(&all_groups, rows, groups, fn, "rows * cols") &&
             size_mul(&scale_bytes, all_groups, 2, fn, "rows * cols") &&
             size_mul(&need, rows, cols, fn, "rows * cols") && size_mul(&out_bytes, need, osize, fn, "rows * cols") &&
             /* sign indices, up to (first_group + rows * groups) * group, stay exact in the kernels' uint64 */
             size_add(&last, first_group, all_groups, fn, "first_group") && size_mul(&last, last, group, fn, "first_group") &&
             has_len(&codes, code_bytes, fn, "codes", "rows * cols padded to whole groups * bits / 8") &&
             has_len(&scales, scale_bytes, fn, "scales", "2 bytes per group") &&
             has_len(&zeros, all_groups, fn, "zeros", "1 byte per group") &&
             has_len(&out, out_bytes, fn, "out", "rows * cols * the dtype's size");
        if (ok && (uintptr_t)out.buf % (uintptr_t)osize != 0) {
            PyErr_Format(PyExc_ValueError, "%s: out must be %zd-byte aligned for its dtype", fn, osize);
            ok = 0;
        }
    }
    if (ok && rows > 0 && cols > 0) {  /* nothing to decode otherwise (never loop over empty rows) */
        p.codes_end = (const uint8_t *)codes.buf + codes.len;
        kernel_t kern = pick_kernel(&p, isa_current);
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t r = 0; r < rows; r++)
            kern(&p, (const uint8_t *)codes.buf + r * row_bytes, (const uint16_t *)scales.buf + r * groups,
                 (const uint8_t *)zeros.buf + r * groups, (uint64_t)(first_group + r * groups), groups, cols,
                 (uint8_t *)out.buf + r * cols * osize);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&codes); PyBuffer_Release(&scales); PyBuffer_Release(&zeros); PyBuffer_Release(&out);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* decode_hash(codes, scales_f16_bits, zeros, exponent, n, group, bits, dtype, rotated, key, period, hasher,
 *             chunk_groups)
 * Decode a whole tensor of n elements (flattened, groups from 0) chunk by chunk of chunk_groups groups and call
 * hasher.update(chunk) on each: decode and SHA-256 of a chunk share the cache, and no tensor-sized buffer is
 * ever allocated. The bytes hashed are exactly those decode() writes.
 * Each chunk is decoded straight into a new bytes object, which is what update() gets: a hasher may keep it, or
 * any view of it (a slice, a NumPy array), as long as it likes, and it never changes. A reused buffer behind a
 * memoryview cannot promise that: a view derived from the memoryview outlives its release(). The cost is one
 * allocation per chunk (malloc hands back the block the previous chunk freed); no byte is copied. */
static PyObject *decode_hash(PyObject *self, PyObject *args) {
    static const char fn[] = "decode_hash";
    Py_buffer codes, scales, zeros;
    int exponent, group, bits, dtype, rotated;
    unsigned long long key;
    Py_ssize_t n, period, chunk_groups;
    PyObject *hasher;
    if (!PyArg_ParseTuple(args, "y*y*y*iniiipKnOn", &codes, &scales, &zeros, &exponent, &n, &group, &bits, &dtype,
                          &rotated, &key, &period, &hasher, &chunk_groups))
        return NULL;
    params_t p;
    Py_ssize_t groups = 0, group_bytes = 0, need = 0;
    const Py_ssize_t osize = dtype == 0 ? 4 : 2;
    int ok = setup(&p, fn, exponent, group, bits, dtype, rotated, key, period, &scales) && at_least(n, 0, fn, "n") &&
             at_least(chunk_groups, 1, fn, "chunk_groups");
    if (ok) {
        groups = n / group + (n % group != 0);
        group_bytes = group * bits / 8;
        Py_ssize_t code_bytes = 0, scale_bytes = 0;
        ok = size_mul(&code_bytes, groups, group_bytes, fn, "n") && size_mul(&scale_bytes, groups, 2, fn, "n") &&
             size_mul(&need, groups, group, fn, "n") &&  /* sign indices, below groups * group */
             has_len(&codes, code_bytes, fn, "codes", "n padded to whole groups * bits / 8") &&
             has_len(&scales, scale_bytes, fn, "scales", "2 bytes per group") &&
             has_len(&zeros, groups, fn, "zeros", "1 byte per group");
        if (ok && chunk_groups > groups) chunk_groups = groups ? groups : 1;
        ok = ok && size_mul(&need, chunk_groups, (Py_ssize_t)group * osize, fn, "chunk_groups");
    }
    PyObject *update = NULL;
    if (ok && groups > 0) ok = (update = PyObject_GetAttrString(hasher, "update")) != NULL;
    if (ok) {
        p.codes_end = (const uint8_t *)codes.buf + codes.len;
        kernel_t kern = pick_kernel(&p, isa_current);
        for (Py_ssize_t g0 = 0; ok && g0 < groups; g0 += chunk_groups) {
            Py_ssize_t ng = groups - g0 < chunk_groups ? groups - g0 : chunk_groups;
            Py_ssize_t count = (g0 + ng) * group < n ? ng * group : n - g0 * group;
            PyObject *chunk = PyBytes_FromStringAndSize(NULL, count * osize);
            if (!chunk) { ok = 0; break; }
            uint8_t *buf = (uint8_t *)PyBytes_AS_STRING(chunk);  /* ours alone until update() gets it */
            Py_BEGIN_ALLOW_THREADS
            kern(&p, (const uint8_t *)codes.buf + g0 * group_bytes, (const uint16_t *)scales.buf + g0,
                 (const uint8_t *)zeros.buf + g0, (uint64_t)g0, ng, count, buf);
            Py_END_ALLOW_THREADS
            PyObject *r = PyObject_CallOneArg(update, chunk);
            Py_DECREF(chunk);
            if (!r) ok = 0;
            Py_XDECREF(r);
        }
    }
    Py_XDECREF(update);
    PyBuffer_Release(&codes); PyBuffer_Release(&scales); PyBuffer_Release(&zeros);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* f32 -> f16 / bf16 bit conversion of a float32 buffer (the scalar routines), exposed for tests. */
static PyObject *convert(PyObject *self, PyObject *args) {
    Py_buffer in, out;
    int dtype;
    if (!PyArg_ParseTuple(args, "y*iw*", &in, &dtype, &out)) return NULL;
    int ok = in.len % 4 == 0 && out.len == in.len / 2 && (dtype == 1 || dtype == 2) && (uintptr_t)in.buf % 4 == 0 &&
             (uintptr_t)out.buf % 2 == 0;
    if (ok) {
        const float *ip = in.buf; uint16_t *op = out.buf;
        for (Py_ssize_t i = 0; i < in.len / 4; i++) op[i] = dtype == 1 ? f32_to_f16(ip[i]) : f32_to_bf16(ip[i]);
    }
    PyBuffer_Release(&in); PyBuffer_Release(&out);
    if (!ok) { PyErr_SetString(PyExc_ValueError, "convert: bad sizes, dtype or alignment"); return NULL; }
    Py_RETURN_NONE;
}

static PyObject *set_isa(PyObject *self, PyObject *arg) {
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name) return NULL;
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, isa_names[i])) {
            if (!isa_supported(i)) return PyErr_Format(PyExc_ValueError, "set_isa: this CPU lacks %s", name);
            isa_current = i;
            Py_RETURN_NONE;
        }
    return PyErr_Format(PyExc_ValueError, "set_isa: unknown ISA %R (scalar, avx2, avx512)", arg);
}

static PyObject *get_isa(PyObject *self, PyObject *unused) { return PyUnicode_FromString(isa_names[isa_current]); }

static PyObject *supported_isas(PyObject *self, PyObject *unused) {
    PyObject *l = PyList_New(0);
    for (int i = 0; l && i < 3; i++)
        if (isa_supported(i)) {
            PyObject *s = PyUnicode_FromString(isa_names[i]);
            if (!s || PyList_Append(l, s) < 0) { Py_XDECREF(s); Py_DECREF(l); return NULL; }
            Py_DECREF(s);
        }
    return l;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_VARARGS, "Decode a block of rows into out (see uc_attest.quant.decode)."},
    {"decode_hash", decode_hash, METH_VARARGS, "Decode a whole tensor chunk by chunk into hasher.update()."},
    {"convert", convert, METH_VARARGS, "float32 -> float16 (1) or bfloat16 (2) bit patterns (scalar)."},
    {"set_isa", set_isa, METH_O, "Force the decoder's ISA: 'scalar', 'avx2' or 'avx512' (ValueError if absent)."},
    {"get_isa", get_isa, METH_NOARGS, "The ISA decode() uses now."},
    {"supported_isas", supported_isas, METH_NOARGS, "The ISAs this CPU can run."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_decode", NULL, -1, methods};

PyMODINIT_FUNC PyInit__decode(void) {
#ifdef UC_X86
    init_tables();
#endif
    for (int i = 2; i >= 0; i--)
        if (isa_supported(i)) { isa_current = i; break; }
    const char *env = getenv("UC_ATTEST_DECODE_ISA");  /* force a path (tests, benchmarks) */
    if (env && *env) {
        int found = -1;
        for (int i = 0; i < 3; i++) if (!strcmp(env, isa_names[i])) found = i;
        if (found < 0 || !isa_supported(found)) {
            PyErr_Format(PyExc_ImportError, "UC_ATTEST_DECODE_ISA=%s: unknown or not supported by this CPU", env);
            return NULL;
        }
        isa_current = found;
    }
    return PyModule_Create(&module);
}
