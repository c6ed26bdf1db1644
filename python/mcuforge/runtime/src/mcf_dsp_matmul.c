/*
 * mcuforge runtime, arm-dsp kernel set: convolution and fully connected as an
 * int8 x int16 matrix multiply on the DSP extension (SMLAD), bit-exact with
 * TFLM's reference kernels (see kernels_arm_dsp.h for the operand layouts the
 * generator prepares).
 *
 * Two output pixels (or rows) at a time are expanded into int16 columns in
 * the scratch buffer (fully connected: a straight copy; k x k: im2col, the
 * padding filled with the input zero point), then each pair of output
 * channels is accumulated against both columns: per group of 4 products, 2
 * filter words, 4 SXTB16, 4 column words and 8 SMLAD give 16
 * multiply-accumulates. 1x1 convolutions, and k x k ones whose 6 columns
 * are small (kxk_columns), take 6 output pixels at a time
 * (mcf_dsp_conv2d_1x1_s8, below): one output channel's filter word, sign-
 * extended once, meets 6 columns, 24 multiply-accumulates for 18
 * instructions (3 columns for 3-5 pixels left, 12 for 11). The input offset
 * lives in the bias (folded by the generator), so the columns hold the raw
 * input values.
 */
#include "mcuforge/kernels.h"
#include "mcuforge/kernels_arm_dsp.h"
#include "mcf_dsp.h"
#include "mcf_window.h"

/*
 * The columns share one buffer of 32-bit words, interleaved by group of 4
 * products: with n columns (2, or 6 in the 1x1 kernel), group g holds column
 * 0's words, then column 1's, ..., each column two words: int16 pairs
 * (k0, k2) and (k1, k3), the order SXTB16 and SXTB16 ROR #8 unpack a word of
 * 4 int8 values in. The filter words hold their products in natural order,
 * so the same two SXTB16 give the matching pairs (w0, w2), (w1, w3). int16
 * slot of product k of column c: */
static inline int32_t slot_of(int32_t k, int32_t c, int32_t n)
{
    return (k & ~3) * n + c * 4 + (((k & 1) << 1) | ((k >> 1) & 1));
}

/* The columns are read as 32-bit words: single int16 stores go through
 * memcpy, which may alias anything. */
static inline void put16(int16_t *cols, int32_t slot, int16_t v)
{
    memcpy(cols + slot, &v, sizeof v);
}

/* 4 int8 values (one word) -> their 4 int16 slots of a group. */
MCF_INLINE void expand_word(int16_t *slot, uint32_t v)
{
    mcf_write32(slot, (uint32_t)__sxtb16(v));
    mcf_write32(slot + 2, (uint32_t)mcf_sxtb16_ror8(v));
}

/* `count` int8 values -> column c of n, products k0 .. k0 + count - 1: one
 * by one up to a group boundary and at the end, 4 at a time (two SXTB16) in
 * between. */
static void expand(const int8_t *src, int32_t count, int16_t *cols, int32_t c, int32_t k0, int32_t n)
{
    int16_t *slot;
    int32_t i = 0;
    for (; i < count && ((k0 + i) & 3) != 0; ++i) {
        put16(cols, slot_of(k0 + i, c, n), src[i]);
    }
    for (slot = cols + slot_of(k0 + i, c, n); i + 3 < count; i += 4, slot += 4 * n) {
        expand_word(slot, mcf_read32(src + i));
    }
    for (; i < count; ++i) {
        put16(cols, slot_of(k0 + i, c, n), src[i]);
    }
}

/* `runs` runs of `words` words of int8 values each (`step` bytes apart)
 * -> one column's consecutive groups from `slot` on (n columns): two words
 * 4 words a step, their loads and stores back to back. */
MCF_INLINE void expand_runs(const int8_t *src, int32_t step, int32_t runs, int32_t words, int16_t *slot, int32_t n)
{
    const int32_t stride = 4 * n; /* int16 per group */
    int32_t r, i;
    for (r = 0; r < runs; ++r, src += step) {
        const int8_t *s = src;
        for (i = words; i >= 4; i -= 4, s += 16, slot += 4 * stride) {
            const uint32_t a = mcf_read32(s), b = mcf_read32(s + 4), c = mcf_read32(s + 8), d = mcf_read32(s + 12);
            const uint32_t a0 = (uint32_t)__sxtb16(a), a1 = (uint32_t)mcf_sxtb16_ror8(a);
            const uint32_t b0 = (uint32_t)__sxtb16(b), b1 = (uint32_t)mcf_sxtb16_ror8(b);
            const uint32_t c0 = (uint32_t)__sxtb16(c), c1 = (uint32_t)mcf_sxtb16_ror8(c);
            const uint32_t d0 = (uint32_t)__sxtb16(d), d1 = (uint32_t)mcf_sxtb16_ror8(d);
            mcf_write32(slot, a0);
            mcf_write32(slot + 2, a1);
            mcf_write32(slot + stride, b0);
            mcf_write32(slot + stride + 2, b1);
            mcf_write32(slot + 2 * stride, c0);
            mcf_write32(slot + 2 * stride + 2, c1);
            mcf_write32(slot + 3 * stride, d0);
            mcf_write32(slot + 3 * stride + 2, d1);
        }
        for (; i > 0; --i, s += 4, slot += stride) {
            expand_word(slot, mcf_read32(s));
        }
    }
}

/* expand_runs for short runs (a kernel row of a few words: KWS's first
 * layer, one word), out of line and a word a step: in the column builders,
 * GCC spills the unrolled loop's counters on every row. */
static __attribute__((noinline)) void expand_rows(const int8_t *src, int32_t step, int32_t runs, int32_t words,
                                                  int16_t *slot, int32_t n)
{
    uint32_t *dst = (uint32_t *)(void *)slot;
    int32_t r, i;
    for (r = 0; r < runs; ++r, src += step) {
        for (i = 0; i < words; ++i, dst += 2 * n) {
            const uint32_t v = mcf_read32(src + 4 * i);
            dst[0] = (uint32_t)__sxtb16(v);
            dst[1] = (uint32_t)mcf_sxtb16_ror8(v);
        }
    }
}

static void fill(int16_t value, int32_t count, int16_t *cols, int32_t c, int32_t k0, int32_t n)
{
    int32_t i;
    for (i = 0; i < count; ++i) {
        put16(cols, slot_of(k0 + i, c, n), value);
    }
}

/* Products K .. Kp-1 meet zero filter bytes, but must be finite: zero them. */
static void clear_tail(int16_t *cols, int32_t k, int32_t kp, int32_t n)
{
    int32_t c;
    for (; k < kp; ++k) {
        for (c = 0; c < n; ++c) {
            put16(cols, slot_of(k, c, n), 0);
        }
    }
}

typedef struct {
    const uint32_t *filter;
    const int32_t *bias, *multiplier, *shift;
    int32_t out_c, groups;
    int32_t output_offset, act_min, act_max;
    int fast; /* requantization mode, MCF_DSP_GENERAL .. MCF_DSP_FAST_SAT (mcf_dsp.h) */
    const int32_t *pw_requant; /* the 1x1 kernel's records (kernels_arm_dsp.h) when mcf_dsp_records_fit, or NULL */
    int wide; /* filter in the wide layout (the pw4w variants, kernels_arm_dsp.h): only matmul_n reads it */
} matmul;

MCF_INLINE int8_t out_of(const matmul *m, int32_t acc, int32_t oc, int fast)
{
    return mcf_dsp_out(acc, m->multiplier[oc], m->shift[oc], m->output_offset, m->act_min, m->act_max, fast);
}

MCF_INLINE void out_4(const matmul *m, int8_t *out, int32_t oc, int32_t a0, int32_t a1, int32_t a2, int32_t a3,
                      int fast)
{
    out[oc] = out_of(m, a0, oc, fast);
    out[oc + 1] = out_of(m, a1, oc + 1, fast);
    out[oc + 2] = out_of(m, a2, oc + 2, fast);
    out[oc + 3] = out_of(m, a3, oc + 3, fast);
}

/* 4 products of 2 output channels (filter words wa, wb) x 2 columns. */
MCF_INLINE void block_2x2(const uint32_t *x, uint32_t wa, uint32_t wb, int32_t *a00, int32_t *a01, int32_t *a10,
                          int32_t *a11)
{
    const int32_t x0l = (int32_t)x[0], x0h = (int32_t)x[1], x1l = (int32_t)x[2], x1h = (int32_t)x[3];
    int32_t wl = __sxtb16(wa), wh = mcf_sxtb16_ror8(wa);
    *a00 = __smlad(wl, x0l, *a00);
    *a00 = __smlad(wh, x0h, *a00);
    *a01 = __smlad(wl, x1l, *a01);
    *a01 = __smlad(wh, x1h, *a01);
    wl = __sxtb16(wb);
    wh = mcf_sxtb16_ror8(wb);
    *a10 = __smlad(wl, x0l, *a10);
    *a10 = __smlad(wh, x0h, *a10);
    *a11 = __smlad(wl, x1l, *a11);
    *a11 = __smlad(wh, x1h, *a11);
}

/*
 * On Cortex-M with the DSP extension (GCC/Clang), the two hottest loops in
 * assembly: the compiler keeps spilling an accumulator or pointer in them.
 * Same instructions, same order of accumulation, as the C below them.
 * Filter words and columns are 4-byte aligned (LDRD): int32 arrays, and
 * scratch at an aligned arena offset.
 */
/* The column strides (bytes: 2 x k_h x in_c x stride_w) the window variant
 * (mcf_dsp_conv2d_s8_winw) has an assembly instance for (codegen/arm_dsp.py
 * WIN_STRIDES). */
#define MCF_WIN_STRIDES(X) X(48) X(96) X(192) X(384) X(768)

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__) && defined(__thumb2__) && defined(__OPTIMIZE__)
#define MCF_DSP_ASM 1

/* 2 output channels x 2 columns over 2 * pairs groups (pairs >= 1). */
static inline void pairs_2x2_asm(const uint32_t **xp, const uint32_t **wp, int32_t pairs, int32_t *a00,
                                 int32_t *a01, int32_t *a10, int32_t *a11)
{
    const uint32_t *x = *xp, *w = *wp;
    int32_t c00 = *a00, c01 = *a01, c10 = *a10, c11 = *a11;
    uint32_t wa, wb, t0, t1, xl, xh;
#define MCF_GROUP_2X2                                    \
        "ldrd %[wa], %[wb], [%[w]], #8\n\t"              \
        "ldrd %[xl], %[xh], [%[x]], #8\n\t"              \
        "sxtb16 %[t0], %[wa]\n\t"                        \
        "sxtb16 %[wa], %[wa], ror #8\n\t"                \
        "sxtb16 %[t1], %[wb]\n\t"                        \
        "sxtb16 %[wb], %[wb], ror #8\n\t"                \
        "smlad %[c00], %[t0], %[xl], %[c00]\n\t"         \
        "smlad %[c00], %[wa], %[xh], %[c00]\n\t"         \
        "smlad %[c10], %[t1], %[xl], %[c10]\n\t"         \
        "smlad %[c10], %[wb], %[xh], %[c10]\n\t"         \
        "ldrd %[xl], %[xh], [%[x]], #8\n\t"              \
        "smlad %[c01], %[t0], %[xl], %[c01]\n\t"         \
        "smlad %[c01], %[wa], %[xh], %[c01]\n\t"         \
        "smlad %[c11], %[t1], %[xl], %[c11]\n\t"         \
        "smlad %[c11], %[wb], %[xh], %[c11]\n\t"
    __asm__ volatile("1:\n\t" MCF_GROUP_2X2 MCF_GROUP_2X2
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t"
                     : [c00] "+r"(c00), [c01] "+r"(c01), [c10] "+r"(c10), [c11] "+r"(c11), [x] "+r"(x),
                       [w] "+r"(w), [n] "+r"(pairs), [wa] "=&r"(wa), [wb] "=&r"(wb), [t0] "=&r"(t0),
                       [t1] "=&r"(t1), [xl] "=&r"(xl), [xh] "=&r"(xh)
                     :
                     : "cc", "memory");
#undef MCF_GROUP_2X2
    *xp = x;
    *wp = w;
    *a00 = c00;
    *a01 = c01;
    *a10 = c10;
    *a11 = c11;
}

/* 4 output channels (the filter words of two pairs, at w and u) x one int8
 * row, 2 * pairs groups of 4 products (pairs >= 1). */
static inline void pairs_4x1_asm(const int8_t **xp, const uint32_t **wp, const uint32_t **up, int32_t pairs,
                                 int32_t *a0, int32_t *a1, int32_t *a2, int32_t *a3)
{
    const int8_t *x = *xp;
    const uint32_t *w = *wp, *u = *up;
    int32_t c0 = *a0, c1 = *a1, c2 = *a2, c3 = *a3;
    uint32_t xl, xh, p, q, t;
#define MCF_GROUP_4X1                                    \
        "ldr %[xl], [%[x]], #4\n\t"                      \
        "sxtb16 %[xh], %[xl], ror #8\n\t"                \
        "sxtb16 %[xl], %[xl]\n\t"                        \
        "ldrd %[p], %[q], [%[w]], #8\n\t"                \
        "sxtb16 %[t], %[p]\n\t"                          \
        "sxtb16 %[p], %[p], ror #8\n\t"                  \
        "smlad %[c0], %[t], %[xl], %[c0]\n\t"            \
        "smlad %[c0], %[p], %[xh], %[c0]\n\t"            \
        "sxtb16 %[t], %[q]\n\t"                          \
        "sxtb16 %[q], %[q], ror #8\n\t"                  \
        "smlad %[c1], %[t], %[xl], %[c1]\n\t"            \
        "smlad %[c1], %[q], %[xh], %[c1]\n\t"            \
        "ldrd %[p], %[q], [%[u]], #8\n\t"                \
        "sxtb16 %[t], %[p]\n\t"                          \
        "sxtb16 %[p], %[p], ror #8\n\t"                  \
        "smlad %[c2], %[t], %[xl], %[c2]\n\t"            \
        "smlad %[c2], %[p], %[xh], %[c2]\n\t"            \
        "sxtb16 %[t], %[q]\n\t"                          \
        "sxtb16 %[q], %[q], ror #8\n\t"                  \
        "smlad %[c3], %[t], %[xl], %[c3]\n\t"            \
        "smlad %[c3], %[q], %[xh], %[c3]\n\t"
    __asm__ volatile("1:\n\t" MCF_GROUP_4X1 MCF_GROUP_4X1
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t"
                     : [c0] "+r"(c0), [c1] "+r"(c1), [c2] "+r"(c2), [c3] "+r"(c3), [x] "+r"(x), [w] "+r"(w),
                       [u] "+r"(u), [n] "+r"(pairs), [xl] "=&r"(xl), [xh] "=&r"(xh), [p] "=&r"(p), [q] "=&r"(q),
                       [t] "=&r"(t)
                     :
                     : "cc", "memory");
#undef MCF_GROUP_4X1
    *xp = x;
    *wp = w;
    *up = u;
    *a0 = c0;
    *a1 = c1;
    *a2 = c2;
    *a3 = c3;
}
#endif

/* Output channels whose accumulators wait on the stack before they are
 * requantized in one pass (the pass keeps offset and clamp in registers). */
#define MCF_CHUNK 32

/* Requantize acc[2 * j], acc[2 * j + 1] into out0[oc0 + j], out1[oc0 + j]. */
MCF_INLINE void requantize_pairs(const matmul *m, const int32_t *acc, int32_t oc0, int32_t count, int8_t *out0,
                                 int8_t *out1, int fast)
{
    const int32_t o = m->output_offset, lo = m->act_min, hi = m->act_max;
    const int32_t *mult = m->multiplier + oc0, *shift = m->shift + oc0;
    int32_t j;
    out0 += oc0;
    out1 += oc0;
    for (j = 0; j < count; ++j) {
        const int32_t mj = mult[j], sj = shift[j];
        out0[j] = mcf_dsp_out(acc[2 * j], mj, sj, o, lo, hi, fast);
        out1[j] = mcf_dsp_out(acc[2 * j + 1], mj, sj, o, lo, hi, fast);
    }
}

/* out0[oc], out1[oc] for every output channel from both columns. */
MCF_INLINE void matmul_2(const matmul *m, const uint32_t *cols, int8_t *out0, int8_t *out1, int fast)
{
    const uint32_t *w = m->filter;
    const uint32_t *cols_end = cols + 4 * m->groups;
    const uint32_t *pairs_end = cols + 8 * (m->groups / 2); /* two groups per iteration */
    int32_t acc[2 * MCF_CHUNK];
    int32_t oc0, oc;
    for (oc0 = 0; oc0 < m->out_c; oc0 += MCF_CHUNK) {
        const int32_t end = m->out_c - oc0 < MCF_CHUNK ? m->out_c : oc0 + MCF_CHUNK;
        int32_t *a = acc;
        for (oc = oc0; oc + 1 < end; oc += 2) {
            const uint32_t *x = cols;
            int32_t a00 = m->bias[oc], a01 = a00, a10 = m->bias[oc + 1], a11 = a10;
#ifdef MCF_DSP_ASM
            if (x != pairs_end) {
                pairs_2x2_asm(&x, &w, m->groups / 2, &a00, &a01, &a10, &a11);
            }
#else
            while (x != pairs_end) {
                block_2x2(x, w[0], w[1], &a00, &a01, &a10, &a11);
                block_2x2(x + 4, w[2], w[3], &a00, &a01, &a10, &a11);
                w += 4;
                x += 8;
            }
#endif
            if (x != cols_end) {
                block_2x2(x, w[0], w[1], &a00, &a01, &a10, &a11);
                w += 2;
            }
            a[0] = a00;
            a[1] = a01;
            a[2] = a10;
            a[3] = a11;
            a += 4;
        }
        if (oc < end) { /* the last, odd output channel: its words on their own */
            const uint32_t *x = cols;
            int32_t a0 = m->bias[oc], a1 = a0;
            while (x != cols_end) {
                const uint32_t wa = *w++;
                const int32_t wl = __sxtb16(wa), wh = mcf_sxtb16_ror8(wa);
                a0 = __smlad(wl, (int32_t)x[0], a0);
                a0 = __smlad(wh, (int32_t)x[1], a0);
                a1 = __smlad(wl, (int32_t)x[2], a1);
                a1 = __smlad(wh, (int32_t)x[3], a1);
                x += 4;
            }
            a[0] = a0;
            a[1] = a1;
        }
        requantize_pairs(m, acc, oc0, end - oc0, out0, out1, fast);
    }
}

/* Column 0 alone: two pairs of output channels at a time (a fully connected
 * layer with one row reads each column word once per four filter words). */
MCF_INLINE void matmul_1(const matmul *m, const uint32_t *cols, int8_t *out, int fast)
{
    const int32_t groups = m->groups;
    const uint32_t *cols_end = cols + 4 * groups;
    const uint32_t *w = m->filter;
    int32_t oc = 0;
    for (; oc + 3 < m->out_c; oc += 4) {
        const uint32_t *v = w + 2 * groups;
        const uint32_t *x = cols;
        int32_t a0 = m->bias[oc], a1 = m->bias[oc + 1], a2 = m->bias[oc + 2], a3 = m->bias[oc + 3];
        while (x != cols_end) {
            const int32_t xl = (int32_t)x[0], xh = (int32_t)x[1];
            const uint32_t wa = w[0], wb = w[1], wc = v[0], wd = v[1];
            a0 = __smlad(__sxtb16(wa), xl, a0);
            a0 = __smlad(mcf_sxtb16_ror8(wa), xh, a0);
            a1 = __smlad(__sxtb16(wb), xl, a1);
            a1 = __smlad(mcf_sxtb16_ror8(wb), xh, a1);
            a2 = __smlad(__sxtb16(wc), xl, a2);
            a2 = __smlad(mcf_sxtb16_ror8(wc), xh, a2);
            a3 = __smlad(__sxtb16(wd), xl, a3);
            a3 = __smlad(mcf_sxtb16_ror8(wd), xh, a3);
            w += 2;
            v += 2;
            x += 4;
        }
        w = v;
        out_4(m, out, oc, a0, a1, a2, a3, fast);
    }
    for (; oc < m->out_c; oc += 2) {
        const int32_t pair = oc + 1 < m->out_c;
        const uint32_t *x = cols;
        int32_t a0 = m->bias[oc], a1 = pair ? m->bias[oc + 1] : 0;
        while (x != cols_end) {
            const int32_t xl = (int32_t)x[0], xh = (int32_t)x[1];
            const uint32_t wa = w[0];
            a0 = __smlad(__sxtb16(wa), xl, a0);
            a0 = __smlad(mcf_sxtb16_ror8(wa), xh, a0);
            if (pair) {
                const uint32_t wb = w[1];
                a1 = __smlad(__sxtb16(wb), xl, a1);
                a1 = __smlad(mcf_sxtb16_ror8(wb), xh, a1);
            }
            w += 1 + pair;
            x += 4;
        }
        out[oc] = out_of(m, a0, oc, fast);
        if (pair) {
            out[oc + 1] = out_of(m, a1, oc + 1, fast);
        }
    }
}

/* One row read straight from the int8 input (no scratch; a fully connected
 * layer with one row): each input word is sign-extended once for 4 output
 * channels, the bytes past K (zero weights) taken as zero. */
MCF_INLINE void block_4x1(uint32_t v, const uint32_t *w, const uint32_t *u, int32_t *a0, int32_t *a1, int32_t *a2,
                          int32_t *a3)
{
    const int32_t xl = __sxtb16(v), xh = mcf_sxtb16_ror8(v);
    *a0 = __smlad(__sxtb16(w[0]), xl, *a0);
    *a0 = __smlad(mcf_sxtb16_ror8(w[0]), xh, *a0);
    *a1 = __smlad(__sxtb16(w[1]), xl, *a1);
    *a1 = __smlad(mcf_sxtb16_ror8(w[1]), xh, *a1);
    *a2 = __smlad(__sxtb16(u[0]), xl, *a2);
    *a2 = __smlad(mcf_sxtb16_ror8(u[0]), xh, *a2);
    *a3 = __smlad(__sxtb16(u[1]), xl, *a3);
    *a3 = __smlad(mcf_sxtb16_ror8(u[1]), xh, *a3);
}

MCF_INLINE void matmul_row(const matmul *m, const int8_t *in, int32_t k, int8_t *out, int fast)
{
    const int32_t groups = m->groups, full = k / 4;
    const int8_t *in_end = in + 4 * full;
    const uint32_t *w = m->filter;
    uint32_t tail = 0;
    int32_t oc = 0, i;
    for (i = 0; i < k - 4 * full; ++i) {
        tail |= (uint32_t)(uint8_t)in_end[i] << (8 * i);
    }
    for (; oc + 3 < m->out_c; oc += 4) {
        const uint32_t *u = w + 2 * groups;
        const int8_t *x = in;
        int32_t a0 = m->bias[oc], a1 = m->bias[oc + 1], a2 = m->bias[oc + 2], a3 = m->bias[oc + 3];
#ifdef MCF_DSP_ASM
        if (full >= 2) {
            pairs_4x1_asm(&x, &w, &u, full / 2, &a0, &a1, &a2, &a3);
        }
#endif
        while (x != in_end) {
            block_4x1(mcf_read32(x), w, u, &a0, &a1, &a2, &a3);
            w += 2;
            u += 2;
            x += 4;
        }
        if (full != groups) {
            block_4x1(tail, w, u, &a0, &a1, &a2, &a3);
            u += 2;
        }
        w = u;
        out_4(m, out, oc, a0, a1, a2, a3, fast);
    }
    for (; oc < m->out_c; oc += 2) {
        const int32_t pair = oc + 1 < m->out_c;
        int32_t a0 = m->bias[oc], a1 = pair ? m->bias[oc + 1] : 0, g;
        for (g = 0; g < groups; ++g) {
            const uint32_t v = g < full ? mcf_read32(in + 4 * g) : tail;
            const int32_t xl = __sxtb16(v), xh = mcf_sxtb16_ror8(v);
            a0 = __smlad(__sxtb16(w[0]), xl, a0);
            a0 = __smlad(mcf_sxtb16_ror8(w[0]), xh, a0);
            if (pair) {
                a1 = __smlad(__sxtb16(w[1]), xl, a1);
                a1 = __smlad(mcf_sxtb16_ror8(w[1]), xh, a1);
            }
            w += 1 + pair;
        }
        out[oc] = out_of(m, a0, oc, fast);
        if (pair) {
            out[oc + 1] = out_of(m, a1, oc + 1, fast);
        }
    }
}

static void matmul_row_any(const matmul *m, const int8_t *in, int32_t k, int8_t *out)
{
    const matmul local = *m;
    if (local.fast == MCF_DSP_FAST_SAT) {
        matmul_row(&local, in, k, out, MCF_DSP_FAST_SAT);
    } else if (local.fast == MCF_DSP_FAST) {
        matmul_row(&local, in, k, out, MCF_DSP_FAST);
    } else {
        matmul_row(&local, in, k, out, MCF_DSP_GENERAL);
    }
}


static int shifts_valid(const int32_t *shift, int32_t count)
{
    return mcf_dsp_shifts_in(shift, count, -31, 31);
}

static void matmul_init(matmul *m, const int8_t *filter, const int32_t *bias, const int32_t *multiplier,
                        const int32_t *shift, int32_t out_c, int32_t k, int32_t output_offset,
                        int32_t act_min, int32_t act_max)
{
    m->filter = (const uint32_t *)(const void *)filter;
    m->bias = bias;
    m->multiplier = multiplier;
    m->shift = shift;
    m->out_c = out_c;
    m->groups = (k + 3) / 4;
    m->output_offset = output_offset;
    m->act_min = act_min;
    m->act_max = act_max;
    m->fast = 0;
    m->pw_requant = NULL;
    m->wide = 0;
}

/* The requantization mode is a constant inside each copy; the parameters
 * are copied to a local, which the int8 output stores cannot alias. */
static void matmul_2_any(const matmul *m, const uint32_t *cols, int8_t *out0, int8_t *out1)
{
    const matmul local = *m;
    if (local.fast == MCF_DSP_FAST_SAT) {
        matmul_2(&local, cols, out0, out1, MCF_DSP_FAST_SAT);
    } else if (local.fast == MCF_DSP_FAST) {
        matmul_2(&local, cols, out0, out1, MCF_DSP_FAST);
    } else {
        matmul_2(&local, cols, out0, out1, MCF_DSP_GENERAL);
    }
}

static void matmul_1_any(const matmul *m, const uint32_t *cols, int8_t *out)
{
    const matmul local = *m;
    if (local.fast == MCF_DSP_FAST_SAT) {
        matmul_1(&local, cols, out, MCF_DSP_FAST_SAT);
    } else if (local.fast == MCF_DSP_FAST) {
        matmul_1(&local, cols, out, MCF_DSP_FAST);
    } else {
        matmul_1(&local, cols, out, MCF_DSP_GENERAL);
    }
}


/* Small windows (K <= MCF_PATCH_MAX, e.g. a first layer over 3 channels):
 * the window's int8 values are gathered into one contiguous patch (whole
 * kernel rows copied at once, padding rows set to the zero point), then
 * expanded into the column in a single aligned pass, 4 values per step. */
#define MCF_PATCH_MAX 64

/* `run` bytes src -> dst, a word at a time (both may be unaligned). */
MCF_INLINE void copy_run(int8_t *dst, const int8_t *src, int32_t run)
{
    int32_t i = 0;
    for (; i + 4 <= run; i += 4) {
        mcf_write32(dst + i, mcf_read32(src + i));
    }
    for (; i < run; ++i) {
        dst[i] = src[i];
    }
}

/* GCC would turn the short copies below into memcpy/memset calls (tens of
 * instructions each for a few bytes): keep them inline. */
#if defined(__GNUC__) && !defined(__clang__)
#define MCF_NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define MCF_NO_LIBCALLS
#endif

/* A window's int8 values, gathered contiguously (K <= MCF_PATCH_MAX). */
typedef union {
    uint32_t w[MCF_PATCH_MAX / 4];
    int8_t b[MCF_PATCH_MAX];
} mcf_patch;

/* A patch's `groups` words -> column c of n, in one aligned pass. */
MCF_INLINE void expand_patch(const mcf_patch *patch, int32_t groups, int16_t *cols, int32_t c, int32_t n)
{
    int16_t *slot = cols + 4 * c; /* slot_of(0, c, n) */
    int32_t g;
    for (g = 0; g < groups; ++g, slot += 4 * n) {
        expand_word(slot, patch->w[g]);
    }
}

/* A patch of `groups` words of the zero point (zero4), then `rows` kernel
 * rows' runs of `bytes` bytes from src (step bytes apart) at dst (`run`
 * bytes apart): a window the padding cuts, dilation 1 along its rows. Out
 * of line, so that its loops keep their registers. */
static __attribute__((noinline)) MCF_NO_LIBCALLS void patch_cut(mcf_patch *patch, int32_t groups, uint32_t zero4,
                                                                 int8_t *dst, const int8_t *src, int32_t step,
                                                                 int32_t rows, int32_t run, int32_t bytes)
{
    int32_t i, r;
    for (i = 0; i < groups; ++i) {
        patch->w[i] = zero4; /* past K too: those products meet zero filter bytes */
    }
    for (r = 0; r < rows; ++r, src += step, dst += run) {
        for (i = 0; i + 4 <= bytes; i += 4) {
            mcf_write32(dst + i, mcf_read32(src + i));
        }
        for (; i < bytes; ++i) {
            dst[i] = src[i];
        }
    }
}

/* The window at (y0, x0) as one contiguous patch of int8 values (products
 * (ky, kx, c), K <= MCF_PATCH_MAX, the padding the zero point); returns its
 * words. */
MCF_NO_LIBCALLS static int32_t gather_patch(const mcf_conv2d_params *p, const int8_t *input, int32_t y0, int32_t x0,
                                            mcf_patch *patch)
{
    const int32_t in_c = p->in_c, k_w = p->k_w, k_h = p->k_h, run = k_w * in_c;
    const int32_t groups = (run * k_h + 3) / 4;
    const int8_t zero = (int8_t)(-p->input_offset);
    int8_t *dst = patch->b;
    int32_t ky, kx, i;
    if (p->dilation_w == 1) { /* per kernel row inside the input, its columns lo .. hi - 1 inside */
        const int32_t lo = x0 < 0 ? -x0 : 0, hi = x0 + k_w > p->in_w ? p->in_w - x0 : k_w;
        const int32_t ky0 = mcf_first_tap(y0, p->dilation_h), ky1 = mcf_end_tap(y0, p->dilation_h, p->in_h, k_h);
        const int32_t rows = hi > lo && ky1 > ky0 ? ky1 - ky0 : 0;
        const int8_t *src = input;
        if (rows > 0) {
            src += ((y0 + ky0 * p->dilation_h) * p->in_w + x0 + lo) * in_c;
            dst += ky0 * run + lo * in_c;
        }
        patch_cut(patch, groups, (uint32_t)(uint8_t)zero * 0x01010101u, dst, src, p->dilation_h * p->in_w * in_c,
                  rows, run, rows > 0 ? (hi - lo) * in_c : 0);
    } else {
        patch->w[groups - 1] = 0; /* the products past K meet zero filter bytes */
        for (ky = 0; ky < k_h; ++ky) {
            const int32_t iy = y0 + ky * p->dilation_h;
            const int row_in = iy >= 0 && iy < p->in_h;
            for (kx = 0; kx < k_w; ++kx, dst += in_c) {
                const int32_t ix = x0 + kx * p->dilation_w;
                const int inside = row_in && ix >= 0 && ix < p->in_w;
                for (i = 0; i < in_c; ++i) {
                    dst[i] = inside ? input[(iy * p->in_w + ix) * in_c + i] : zero;
                }
            }
        }
    }
    return groups;
}

static void im2col_patch(const mcf_conv2d_params *p, const int8_t *input, int32_t y0, int32_t x0, int16_t *cols,
                         int32_t c, int32_t n)
{
    mcf_patch patch;
    expand_patch(&patch, gather_patch(p, input, y0, x0, &patch), cols, c, n);
}

/* im2col of output pixel `pixel` into column c of n: K = k_h * k_w * in_c products. */
static void im2col(const mcf_conv2d_params *p, const int8_t *input, int32_t pixel, int16_t *cols, int32_t c,
                   int32_t n)
{
    const int32_t in_c = p->in_c, k_w = p->k_w;
    const int32_t oy = pixel / p->out_w, ox = pixel - oy * p->out_w;
    const int32_t y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
    const int16_t zero = (int16_t)(-p->input_offset);
    int32_t ky, kx, k = 0;
    if (p->k_h == 1 && k_w == 1 && y0 >= 0 && y0 < p->in_h && x0 >= 0 && x0 < p->in_w) {
        expand(input + (y0 * p->in_w + x0) * in_c, in_c, cols, c, 0, n);
        return;
    }
    if (p->k_h * k_w * in_c <= MCF_PATCH_MAX && in_c % 4 != 0) {
        im2col_patch(p, input, y0, x0, cols, c, n);
        return;
    }
    for (ky = 0; ky < p->k_h; ++ky) {
        const int32_t iy = y0 + ky * p->dilation_h;
        if (iy < 0 || iy >= p->in_h) {
            fill(zero, k_w * in_c, cols, c, k, n);
            k += k_w * in_c;
            continue;
        }
        if (p->dilation_w == 1 && x0 >= 0 && x0 + k_w <= p->in_w) {
            /* the whole kernel row is inside: one contiguous run */
            expand(input + (iy * p->in_w + x0) * in_c, k_w * in_c, cols, c, k, n);
            k += k_w * in_c;
            continue;
        }
        for (kx = 0; kx < k_w; ++kx) {
            const int32_t ix = x0 + kx * p->dilation_w;
            if (ix < 0 || ix >= p->in_w) {
                fill(zero, in_c, cols, c, k, n);
            } else {
                expand(input + (iy * p->in_w + ix) * in_c, in_c, cols, c, k, n);
            }
            k += in_c;
        }
    }
}

/* Every pair of output pixels from `first` on: im2col of both, then both
 * through the matrix multiply (one copy per requantization mode, the
 * parameters in a local the output stores cannot alias). Returns the first
 * pixel not done. */
MCF_INLINE int32_t conv_pairs(const matmul *m, const mcf_conv2d_params *p, const int8_t *input, int8_t *output,
                              int16_t *cols, int32_t first, int mode)
{
    const int32_t pixels = p->out_h * p->out_w, out_c = p->out_c;
    const uint32_t *words = (const uint32_t *)(void *)cols;
    int32_t n;
    for (n = first; n + 1 < pixels; n += 2) {
        im2col(p, input, n, cols, 0, 2);
        im2col(p, input, n + 1, cols, 1, 2);
        matmul_2(m, words, output + n * out_c, output + (n + 1) * out_c, mode);
    }
    return n;
}

static int32_t conv_pairs_any(const matmul *m, const mcf_conv2d_params *p, const int8_t *input, int8_t *output,
                              int16_t *cols, int32_t first)
{
    const matmul local = *m;
    if (local.fast == MCF_DSP_FAST_SAT) {
        return conv_pairs(&local, p, input, output, cols, first, MCF_DSP_FAST_SAT);
    }
    if (local.fast == MCF_DSP_FAST) {
        return conv_pairs(&local, p, input, output, cols, first, MCF_DSP_FAST);
    }
    return conv_pairs(&local, p, input, output, cols, first, MCF_DSP_GENERAL);
}

/* The pixels from `first` on, after the blocks of 6: pairs (2 columns),
 * then a last odd pixel (1). */
static void conv_rest(const matmul *m, const mcf_conv2d_params *p, const int8_t *input, int8_t *output,
                      int16_t *cols, int32_t first)
{
    const int32_t k = p->k_h * p->k_w * p->in_c, kp = (k + 3) / 4 * 4;
    const int32_t pixels = p->out_h * p->out_w;
    int32_t n;
    clear_tail(cols, k, kp, 2);
    n = conv_pairs_any(m, p, input, output, cols, first);
    if (n < pixels) {
        im2col(p, input, n, cols, 0, 2);
        matmul_1_any(m, (const uint32_t *)(void *)cols, output + n * p->out_c);
    }
}

static int conv_args_ok(const mcf_conv2d_params *p, const int8_t *input, const int8_t *output,
                        const int8_t *scratch)
{
    return !(p->in_h <= 0 || p->in_w <= 0 || p->in_c <= 0 || p->out_h <= 0 || p->out_w <= 0 || p->out_c <= 0 ||
             p->k_h <= 0 || p->k_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0 || p->dilation_h <= 0 ||
             p->dilation_w <= 0 || p->act_min < -128 || p->act_max > 127 || p->act_min > p->act_max ||
             p->filter == NULL || p->bias == NULL || p->multiplier == NULL || p->shift == NULL ||
             input == NULL || output == NULL || scratch == NULL || !shifts_valid(p->shift, p->out_c));
}

static void conv_matmul_init(matmul *m, const mcf_conv2d_params *p)
{
    matmul_init(m, p->filter, p->bias, p->multiplier, p->shift, p->out_c, p->k_h * p->k_w * p->in_c,
                p->output_offset, p->act_min, p->act_max);
    m->fast = mcf_dsp_mode(p->per_channel, p->act_min, p->act_max);
}


/*
 * 1x1 convolutions: blocks of 6 output pixels, each output channel's filter
 * word sign-extended once (2 SXTB16) for the 6 columns; per group of 4
 * products: 1 filter load, 2 SXTB16, 3 LDM of 4 column words, 12 SMLAD for
 * 24 multiply-accumulates. 3 to 5 pixels left: a block of 3 columns; 1 or 2:
 * the 2-pixel blocks above, in the same scratch. On the DSP extension the
 * blocks run in assembly, requantization included, for the layers whose
 * requantization records are given (m->pw_requant); the others take the 2-pixel blocks
 * throughout. Elsewhere the same blocks run in C.
 */
#define MCF_BLOCK 6

/* acc[0 .. n-1] (acc[0] holding the bias on entry) = the bias + the dot
 * products of one output channel's filter words (w, every `stride` words)
 * with n columns (n <= 6), `groups` groups of 4 products. */
static void dot_c(int32_t *acc, const uint32_t *w, int32_t stride, const uint32_t *x, int32_t groups, int32_t n)
{
    int32_t a[MCF_BLOCK], g, j;
    for (j = 0; j < n; ++j) {
        a[j] = acc[0];
    }
    for (g = 0; g < groups; ++g, w += stride, x += 2 * n) {
        const int32_t even = __sxtb16(*w), odd = mcf_sxtb16_ror8(*w);
        for (j = 0; j < n; ++j) {
            a[j] = __smlad(odd, (int32_t)x[2 * j + 1], __smlad(even, (int32_t)x[2 * j], a[j]));
        }
    }
    for (j = 0; j < n; ++j) {
        acc[j] = a[j];
    }
}

/* dot_c for the wide layout: the channel's int16 pairs (w0, w2) at w and
 * (w1, w3) `odd` words after them, group after group `stride` words apart. */
static void dot_wide(int32_t *acc, const uint32_t *w, int32_t stride, int32_t odd, const uint32_t *x,
                     int32_t groups, int32_t n)
{
    int32_t a[MCF_BLOCK], g, j;
    for (j = 0; j < n; ++j) {
        a[j] = acc[0];
    }
    for (g = 0; g < groups; ++g, w += stride, x += 2 * n) {
        const int32_t even = (int32_t)w[0], high = (int32_t)w[odd];
        for (j = 0; j < n; ++j) {
            a[j] = __smlad(high, (int32_t)x[2 * j + 1], __smlad(even, (int32_t)x[2 * j], a[j]));
        }
    }
    for (j = 0; j < n; ++j) {
        acc[j] = a[j];
    }
}

#ifdef MCF_DSP_ASM
/*
 * The whole block for a layer with requantization records (m->pw_requant,
 * kernels_arm_dsp.h): every other output channel from the job's first (the
 * first channels of the pairs, or the second ones: their filter words
 * follow each other with a stride of 2 words) against the 6 columns,
 * requantized in registers and stored. The job is copied to a 9-word frame
 * on the stack (offsets below). Each channel's first group starts its 6
 * accumulators from the bias; the rest of the groups loop unrolled 8 times,
 * entered at the group that leaves a multiple of 8 (`entry`, computed here:
 * each group is 18 32-bit instructions, 72 bytes).
 * Requantization, 6 instructions per output (mcf_dsp_out_record):
 * SMMLAR(2 acc, m, r + (acc >> 31)) >> e, SSAT, STRB; one LDM brings the
 * channel's m, e and r.
 * The 6 outputs of a channel go to out + j * out_c (STRB with a scaled
 * register offset from out and out + out_c).
 */
typedef struct {
    const uint32_t *x;         /* 0: the columns */
    const uint32_t *x_end;     /* 4 */
    uint32_t entry;            /* 8: set by the assembly */
    int8_t *out_end;           /* 12: out past the last channel */
    const int32_t *bias;       /* 16: the first channel's (then every other one) */
    const int32_t *requant;    /* 20: the first channel's record (then the next ones) */
    int8_t *out;               /* 24: the first channel's output for pixel 0 of the block */
    int32_t out_c;             /* 28 */
    const uint32_t *w;         /* 32: the first channel's first filter word */
} mcf_pw6_job;

void mcf_dsp_pw6_sat(const mcf_pw6_job *job, int32_t groups);
void mcf_dsp_pw6_lo(const mcf_pw6_job *job, int32_t groups);
#define MCF_PW6_LOADS(acc0, acc1, first0, first1) \
    "ldmia.w r2!, {r0, r10, r11, lr}\n\t"  \
    "smlad " acc0 ", r12, r0, " first0 "\n\t" \
    "smlad " acc0 ", r3, r10, " acc0 "\n\t" \
    "smlad " acc1 ", r12, r11, " first1 "\n\t" \
    "smlad " acc1 ", r3, lr, " acc1 "\n\t"
#define MCF_PW6_WORD                       \
    "ldr.w r3, [r1], #8\n\t"               \
    "sxtb16 r12, r3\n\t"                   \
    "sxtb16 r3, r3, ror #8\n\t"
#define MCF_PW6_GROUP MCF_PW6_WORD MCF_PW6_LOADS("r4", "r5", "r4", "r5") \
    MCF_PW6_LOADS("r6", "r7", "r6", "r7") MCF_PW6_LOADS("r8", "r9", "r8", "r9")
#define MCF_PW6_OUT(acc, addr) MCF_ASM_REQUANT(acc, "r2", "r2", "r0", "r10", "r11") "strb r2, " addr "\n\t"
/* The same when output_offset = -128 (mcf_dsp_out_record_lo): 5 instructions. */
#define MCF_PW6_OUT_LO(acc, addr) MCF_ASM_REQUANT_LO(acc, "r2", "r0", "r10", "r11") "strb r2, " addr "\n\t"
/* A channel's requantization in registers, for MCF_PW6_OUT: r0 its multiplier,
 * r10 the right shift e, r11 output_offset * 2^e + 2^(e-1) (its record); then
 * r12 the output pointer, lr the output stride. */
#define MCF_PW_REQUANT_SETUP                                                     \
    "ldr r3, [sp, #20]\n\t"                                                      \
    "ldmia r3!, {r0, r10, r11}\n\t"                                              \
    "str r3, [sp, #20]\n\t"                                                      \
    "ldr r12, [sp, #24]\n\t"                                                     \
    "ldr lr, [sp, #28]\n\t"
/* The entry of the assembly 1x1 kernel `name` (section, symbol, the
 * callee-saved registers, the job's words in r2-r10): r0 = the groups the
 * first pass through the loop, unrolled `unroll` times, skips; a single
 * group branches to 7. */
#define MCF_PW_ENTRY(name, mask, unroll)                                       \
    MCF_ASM_FUNCTION(name)                                                    \
    "ldmia r0, {r2-r10}\n\t"                                                  \
    "subs r0, r1, #1\n\t"           /* groups after the first */              \
    "beq 7f\n\t"                                                              \
    "and r0, r0, #" mask "\n\t"                                               \
    "rsb r0, r0, #" unroll "\n\t"                                             \
    "and r0, r0, #" mask "\n\t"     /* groups skipped in the first pass */
/* After a channel pair's outputs: on to the next pair (label 5), or return
 * from the kernel `name` when the output pointer reaches its end. */
#define MCF_PW_NEXT_PAIR_OR_RETURN(name)                                       \
    "adds r12, r12, #2\n\t"                                                   \
    "str r12, [sp, #24]\n\t"                                                  \
    "ldr r3, [sp, #12]\n\t"                                                   \
    "cmp r12, r3\n\t"                                                         \
    "bne 5b\n\t"                                                              \
    "add sp, sp, #36\n\t"                                                     \
    "pop {r4-r11, pc}\n\t"                                                    \
    ".size " name ", .-" name "\n\t"                                          \
    ".popsection"
#define MCF_PW6_FUNCTION(name, OUT)                                              \
    MCF_PW_ENTRY(name, "7", "8")                                                     \
        "movs r1, #72\n\t"                                                       \
        "adr.w r4, 1f\n\t"                                                       \
        "mla r4, r0, r1, r4\n\t"                                                 \
        "b 8f\n"                                                                 \
        "7:\n\t"                                                                 \
        "adr.w r4, 2f\n"                /* one group: straight to the end test */ \
        "8:\n\t"                                                                 \
        "orr r4, r4, #1\n\t"            /* entry (Thumb) */                      \
        "push {r2-r10}\n\t"                                                      \
        "mov r1, r10\n"                                                          \
        "5:\n\t"                                                                 \
        "ldr r3, [sp, #16]\n\t"                                                  \
        "ldr r9, [r3], #8\n\t"          /* bias */                               \
        "str r3, [sp, #16]\n\t"                                                  \
        "ldr r2, [sp]\n\t"                                                       \
        MCF_PW6_WORD                    /* the first group, from the bias (r9 last) */ \
        MCF_PW6_LOADS("r4", "r5", "r9", "r9")                                    \
        MCF_PW6_LOADS("r6", "r7", "r9", "r9")                                    \
        MCF_PW6_LOADS("r8", "r9", "r9", "r9")                                    \
        "ldr r3, [sp, #8]\n\t"                                                   \
        "bx r3\n\t"                                                              \
        ".p2align 2\n"                                                           \
        "1:\n\t" MCF_PW6_GROUP MCF_PW6_GROUP MCF_PW6_GROUP MCF_PW6_GROUP         \
        MCF_PW6_GROUP MCF_PW6_GROUP MCF_PW6_GROUP MCF_PW6_GROUP                  \
        "2:\n\t"                                                                 \
        "ldr r3, [sp, #4]\n\t"                                                   \
        "cmp r2, r3\n\t"                                                         \
        "bne 1b\n\t"                                                             \
        MCF_PW_REQUANT_SETUP                                                     \
        "add r3, r12, lr\n\t"                                                    \
        OUT("r4", "[r12]")                                                       \
        OUT("r5", "[r3]")                                                        \
        OUT("r6", "[r12, lr, lsl #1]")                                           \
        OUT("r7", "[r3, lr, lsl #1]")                                            \
        OUT("r8", "[r12, lr, lsl #2]")                                           \
        OUT("r9", "[r3, lr, lsl #2]")                                            \
        MCF_PW_NEXT_PAIR_OR_RETURN(name)
__asm__(MCF_PW6_FUNCTION("mcf_dsp_pw6_sat", MCF_PW6_OUT));
__asm__(MCF_PW6_FUNCTION("mcf_dsp_pw6_lo", MCF_PW6_OUT_LO));
/*
 * The same for 3 columns (the 3 to 5 pixels left after the blocks of 6):
 * 12 multiply-accumulates per 11 instructions (an LDM of 4 words and an
 * LDRD), groups of 44 bytes, unrolled 4 times; the column pointer, its end
 * and the loop entry stay in r9, r7, r8.
 */
void mcf_dsp_pw3_sat(const mcf_pw6_job *job, int32_t groups);
void mcf_dsp_pw3_lo(const mcf_pw6_job *job, int32_t groups);
#define MCF_PW3_GROUP(first4, first5)     \
    MCF_PW6_WORD                           \
    "ldmia.w r2!, {r0, r10, r11, lr}\n\t"  \
    "smlad r4, r12, r0, " first4 "\n\t"    \
    "smlad r4, r3, r10, r4\n\t"            \
    "smlad r5, r12, r11, " first5 "\n\t"   \
    "smlad r5, r3, lr, r5\n\t"             \
    "ldrd r0, r10, [r2], #8\n\t"           \
    "smlad r6, r12, r0, r6\n\t"            \
    "smlad r6, r3, r10, r6\n\t"
#define MCF_PW3_FUNCTION(name, OUT)                                              \
    MCF_PW_ENTRY(name, "3", "4")                                                     \
        "movs r1, #44\n\t"                                                       \
        "mul r0, r0, r1\n\t"                                                     \
        "adr.w r1, 1f\n\t"                                                       \
        "add r0, r0, r1\n\t"                                                     \
        "b 8f\n"                                                                 \
        "7:\n\t"                                                                 \
        "adr.w r0, 2f\n"                /* one group: straight to the end test */ \
        "8:\n\t"                                                                 \
        "push {r2-r10}\n\t"                                                      \
        "orr r8, r0, #1\n\t"            /* entry (Thumb) */                      \
        "mov r9, r2\n\t"                                                         \
        "mov r7, r3\n\t"                                                         \
        "mov r1, r10\n"                                                          \
        "5:\n\t"                                                                 \
        "ldr r3, [sp, #16]\n\t"                                                  \
        "ldr r6, [r3], #8\n\t"          /* bias */                               \
        "str r3, [sp, #16]\n\t"                                                  \
        "mov r2, r9\n\t"                                                         \
        MCF_PW3_GROUP("r6", "r6")       /* the first group, from the bias (r6 last) */ \
        "bx r8\n\t"                                                              \
        ".p2align 2\n"                                                           \
        "1:\n\t" MCF_PW3_GROUP("r4", "r5") MCF_PW3_GROUP("r4", "r5") MCF_PW3_GROUP("r4", "r5") \
        MCF_PW3_GROUP("r4", "r5")                                                \
        "2:\n\t"                                                                 \
        "cmp r2, r7\n\t"                                                         \
        "bne 1b\n\t"                                                             \
        MCF_PW_REQUANT_SETUP                                                     \
        OUT("r4", "[r12]")                                                       \
        OUT("r5", "[r12, lr]")                                                   \
        OUT("r6", "[r12, lr, lsl #1]")                                           \
        MCF_PW_NEXT_PAIR_OR_RETURN(name)
__asm__(MCF_PW3_FUNCTION("mcf_dsp_pw3_sat", MCF_PW6_OUT));
__asm__(MCF_PW3_FUNCTION("mcf_dsp_pw3_lo", MCF_PW6_OUT_LO));
#undef MCF_PW3_GROUP
#undef MCF_PW6_LOADS
#undef MCF_PW6_WORD
#undef MCF_PW_REQUANT_SETUP
#undef MCF_PW6_GROUP
#undef MCF_PW6_OUT
#undef MCF_PW6_OUT_LO
#undef MCF_PW6_FUNCTION
#undef MCF_PW3_FUNCTION
#undef MCF_PW_ENTRY
#undef MCF_PW_NEXT_PAIR_OR_RETURN
#endif

#ifdef MCF_DSP_ASM
/*
 * 2 output channels (a pair) x 4 columns (mcf_dsp_conv2d_1x1_s8_pw4): the
 * pair's two filter words of a group, each sign-extended half by half (the
 * odd products, then the even ones: the words are read twice, so that 8
 * accumulators, 2 weights, 2 inputs and the two pointers fit the 14
 * registers), meet the 4 columns' words: per group of 4 products 12 loads in
 * 4 runs of independent loads (16 cycles), 4 SXTB16 and 16 SMLAD for 32
 * multiply-accumulates. The order of accumulation differs from the C's;
 * the int32 sum does not. Groups loop unrolled 8 times, entered at the group
 * that leaves a multiple of 8. Requantization from the records as mcf_dsp_pw6_sat.
 * Registers: r4-r7 channel a's accumulators, r8-r11 channel b's, r12 the
 * filter words, lr the columns; r0-r3 weights and inputs.
 */
typedef struct {
    const uint32_t *x;       /* 0: the columns */
    const uint32_t *x_end;   /* 4 */
    const int32_t *bias;     /* 8: the pair's two biases (then the next pair's) */
    const int32_t *rec_a;    /* 12: the pair's first channel's record */
    const int32_t *rec_b;    /* 16: its second channel's */
    int8_t *out;             /* 20: the pair's first channel, pixel 0 */
    int8_t *out_end;         /* 24: out past the last pair */
    int32_t out_c;           /* 28 */
    const uint32_t *w;       /* 32: the pair's filter words */
} mcf_pw4_job;              /* 36: the loop entry, on the stack */

void mcf_dsp_pw4x2(const mcf_pw4_job *job, int32_t groups);
void mcf_dsp_pw4x2w(const mcf_pw4_job *job, int32_t groups);
void mcf_dsp_pw4x2_lo(const mcf_pw4_job *job, int32_t groups);
void mcf_dsp_pw4x2w_lo(const mcf_pw4_job *job, int32_t groups);
/* One group of the pair: 16 SMLAD over 4 columns (lr) and the 2 channels'
 * filter words (r12). FIRST loads a's and b's odd taps into r0, r1 and ODD
 * makes them int16 pairs; then the even taps from [r12], [r12, #4], r12 STEP
 * bytes on, EVEN makes them pairs. Column c's two words (k0, k2), (k1, k3)
 * are at lr + c x S and 4 bytes on; lr then moves ADV bytes on. */
#define MCF_PW4_GROUP_AT(FIRST, ODD, STEP, EVEN, S, ADV) \
    FIRST                                             \
    "ldr.w r2, [lr, #4]\n\t"                          \
    "ldr.w r3, [lr, #(" S "+4)]\n\t"                  \
    ODD                                               \
    "smlad r4, r0, r2, r4\n\t"                        \
    "smlad r8, r1, r2, r8\n\t"                        \
    "smlad r5, r0, r3, r5\n\t"                        \
    "smlad r9, r1, r3, r9\n\t"                        \
    "ldr.w r2, [lr, #(2*" S "+4)]\n\t"                \
    "ldr.w r3, [lr, #(3*" S "+4)]\n\t"                \
    "smlad r6, r0, r2, r6\n\t"                        \
    "smlad r10, r1, r2, r10\n\t"                      \
    "smlad r7, r0, r3, r7\n\t"                        \
    "smlad r11, r1, r3, r11\n\t"                      \
    "ldr.w r1, [r12, #4]\n\t"                         \
    "ldr.w r0, [r12], #" STEP "\n\t"                  \
    "ldr.w r2, [lr, #(" S ")]\n\t"                    \
    "ldr.w r3, [lr, #(2*" S ")]\n\t"                  \
    EVEN                                              \
    "smlad r5, r0, r2, r5\n\t"                        \
    "smlad r9, r1, r2, r9\n\t"                        \
    "smlad r6, r0, r3, r6\n\t"                        \
    "smlad r10, r1, r3, r10\n\t"                      \
    "ldr.w r2, [lr, #(3*" S ")]\n\t"                  \
    "ldr.w r3, [lr], #" ADV "\n\t"                    \
    "smlad r7, r0, r2, r7\n\t"                        \
    "smlad r11, r1, r2, r11\n\t"                      \
    "smlad r4, r0, r3, r4\n\t"                        \
    "smlad r8, r1, r3, r8\n\t"
/* the interleaved columns of the scratch: column c's words at 8 c, 32 bytes a group */
#define MCF_PW4_GROUP_OF(FIRST, ODD, STEP, EVEN) MCF_PW4_GROUP_AT(FIRST, ODD, STEP, EVEN, "8", "32")
/* int8 filter words (4 taps each): SXTB16 makes the pairs. */
#define MCF_PW4_GROUP                                                          \
    MCF_PW4_GROUP_OF("ldr.w r0, [r12]\n\tldr.w r1, [r12, #4]\n\t",              \
                     "sxtb16 r0, r0, ror #8\n\tsxtb16 r1, r1, ror #8\n\t", "8",    \
                     "sxtb16 r0, r0\n\tsxtb16 r1, r1\n\t")
/* mcf_dsp_out_record of acc into addr: r0 m, r1 e, r2 the rounding; r3 scratch. */
#define MCF_PW4_OUT(acc, addr) MCF_ASM_REQUANT(acc, "r3", "r3", "r0", "r1", "r2") "strb r3, " addr "\n\t"
/* the same when output_offset = -128 (mcf_dsp_out_record_lo): no sign term */
#define MCF_PW4_OUT_LO(acc, addr) MCF_ASM_REQUANT_LO(acc, "r3", "r0", "r1", "r2") "strb r3, " addr "\n\t"
/* The wide layout's group (mcf_dsp_pw4x2w): the pair's 4 words of int16
 * pairs, a's (w0, w2), b's (w0, w2), a's (w1, w3), b's (w1, w3), made offline
 * (codegen/arm_dsp.py pack_wide): no SXTB16, 12 loads and 16 SMLAD. */
#define MCF_PW4W_GROUP MCF_PW4_GROUP_OF("ldr.w r0, [r12, #8]\n\tldr.w r1, [r12, #12]\n\t", "", "16", "")
#define MCF_PW4_FUNCTION(name, GROUP, GROUP_BYTES, OUT)                         \
    MCF_ASM_FUNCTION(name)                                                    \
    "adr.w r11, 1f\n\t" \
    "rsb r12, r1, #0\n\t" \
    "and r12, r12, #7\n\t"     /* groups the first pass skips */ \
    "mov lr, #" GROUP_BYTES "\n\t" /* bytes per group: its 32-bit instructions */ \
    "mla r11, r12, lr, r11\n\t" \
    "ldmia r0, {r2-r10}\n\t" \
    "orr r11, r11, #1\n\t"      /* entry (Thumb) */ \
    "push {r2-r11}\n" \
    "5:\n\t" \
    "ldr r0, [sp, #8]\n\t" \
    "ldrd r4, r8, [r0], #8\n\t" /* the pair's biases */ \
    "str r0, [sp, #8]\n\t" \
    "mov r5, r4\n\t" \
    "mov r6, r4\n\t" \
    "mov r7, r4\n\t" \
    "mov r9, r8\n\t" \
    "mov r10, r8\n\t" \
    "mov r11, r8\n\t" \
    "ldr r12, [sp, #32]\n\t" \
    "ldr lr, [sp]\n\t" \
    "ldr r0, [sp, #36]\n\t" \
    "bx r0\n\t" \
    ".p2align 2\n" \
    "1:\n\t" GROUP GROUP GROUP GROUP GROUP GROUP GROUP GROUP \
    "ldr r0, [sp, #4]\n\t" \
    "cmp lr, r0\n\t" \
    "bne 1b\n\t" \
    "str r12, [sp, #32]\n\t" \
    "ldr r12, [sp, #12]\n\t" \
    "ldmia r12!, {r0, r1, r2}\n\t" \
    "str r12, [sp, #12]\n\t" \
    "ldr r12, [sp, #20]\n\t" \
    "ldr lr, [sp, #28]\n\t" \
    OUT("r4", "[r12]") \
    OUT("r5", "[r12, lr]") \
    OUT("r6", "[r12, lr, lsl #1]") \
    "add r4, lr, lr, lsl #1\n\t" \
    OUT("r7", "[r12, r4]") \
    "ldr r12, [sp, #16]\n\t" \
    "ldmia r12!, {r0, r1, r2}\n\t" \
    "str r12, [sp, #16]\n\t" \
    "ldr r12, [sp, #20]\n\t" \
    "adds r12, r12, #1\n\t" \
    OUT("r8", "[r12]") \
    OUT("r9", "[r12, lr]") \
    OUT("r10", "[r12, lr, lsl #1]") \
    OUT("r11", "[r12, r4]") \
    "adds r12, r12, #1\n\t" \
    "str r12, [sp, #20]\n\t" \
    "ldr r3, [sp, #24]\n\t" \
    "cmp r12, r3\n\t" \
    "bne 5b\n\t" \
    "add sp, sp, #40\n\t" \
    "pop {r4-r11, pc}\n\t" \
    ".size " name ", .-" name "\n\t" \
    ".popsection"
__asm__(MCF_PW4_FUNCTION("mcf_dsp_pw4x2", MCF_PW4_GROUP, "128", MCF_PW4_OUT));
__asm__(MCF_PW4_FUNCTION("mcf_dsp_pw4x2w", MCF_PW4W_GROUP, "112", MCF_PW4_OUT));
__asm__(MCF_PW4_FUNCTION("mcf_dsp_pw4x2_lo", MCF_PW4_GROUP, "128", MCF_PW4_OUT_LO));
__asm__(MCF_PW4_FUNCTION("mcf_dsp_pw4x2w_lo", MCF_PW4W_GROUP, "112", MCF_PW4_OUT_LO));
/* The wide group on columns S bytes apart, each contiguous (mcf_dsp_conv2d_s8_winw: a window of widened input
 * rows read in place), one instance per S of MCF_WIN_STRIDES. */
#define MCF_PW4W_GROUP_S(S) \
    MCF_PW4_GROUP_AT("ldr.w r0, [r12, #8]\n\tldr.w r1, [r12, #12]\n\t", "", "16", "", S, "8")
#define MCF_PW4W_S(S)                                                                                  \
    void mcf_dsp_pw4x2w_s##S(const mcf_pw4_job *job, int32_t groups);                                    \
    void mcf_dsp_pw4x2w_s##S##_lo(const mcf_pw4_job *job, int32_t groups);                               \
    __asm__(MCF_PW4_FUNCTION("mcf_dsp_pw4x2w_s" #S, MCF_PW4W_GROUP_S(#S), "112", MCF_PW4_OUT));         \
    __asm__(MCF_PW4_FUNCTION("mcf_dsp_pw4x2w_s" #S "_lo", MCF_PW4W_GROUP_S(#S), "112", MCF_PW4_OUT_LO));
MCF_WIN_STRIDES(MCF_PW4W_S)
#undef MCF_PW4W_S
#undef MCF_PW4W_GROUP_S
#undef MCF_PW4_GROUP
#undef MCF_PW4W_GROUP
#undef MCF_PW4_GROUP_OF
#undef MCF_PW4_GROUP_AT
#undef MCF_PW4_FUNCTION
#undef MCF_PW4_OUT
#undef MCF_PW4_OUT_LO

/* Every channel pair against the 4 columns, through the assembly. */
/* Every channel pair against 4 columns through `fn`; the columns' words span group_words words a group. */
static void fused4_with(const matmul *m, const uint32_t *cols, int8_t *out, int32_t group_words,
                        void (*fn)(const mcf_pw4_job *, int32_t))
{
    const int32_t pairs = m->out_c & ~1;
    mcf_pw4_job job;
    job.x = cols;
    job.x_end = cols + group_words * m->groups;
    job.bias = m->bias;
    job.rec_a = m->pw_requant;
    job.rec_b = m->pw_requant + 3 * (pairs / 2);
    job.out = out;
    job.out_end = out + pairs;
    job.out_c = m->out_c;
    job.w = m->filter;
    fn(&job, m->groups);
}

static void fused4(const matmul *m, const uint32_t *cols, int8_t *out)
{
    void (*fn)(const mcf_pw4_job *, int32_t);
    if (mcf_dsp_records_lo(m->output_offset)) {
        fn = m->wide ? mcf_dsp_pw4x2w_lo : mcf_dsp_pw4x2_lo;
    } else {
        fn = m->wide ? mcf_dsp_pw4x2w : mcf_dsp_pw4x2;
    }
    fused4_with(m, cols, out, 8, fn);
}

#endif

#ifdef MCF_DSP_ASM
/* Every output channel of a pair against n (6 or 3) columns, through the
 * assembly above: the pairs' first channels, then their second ones. */
static void fused(const matmul *m, const uint32_t *cols, int32_t n, int8_t *out)
{
    const int32_t out_c = m->out_c, groups = m->groups, pairs = out_c & ~1;
    mcf_pw6_job job;
    int32_t second;
    for (second = 0; second < 2; ++second) {
        job.x = cols;
        job.x_end = cols + 2 * n * groups;
        job.entry = 0;
        job.out_end = out + second + pairs;
        job.bias = m->bias + second;
        job.requant = m->pw_requant + 3 * (second * pairs / 2);
        job.out = out + second;
        job.out_c = out_c;
        job.w = m->filter + second;
        if (mcf_dsp_records_lo(m->output_offset)) {
            (n == MCF_BLOCK ? mcf_dsp_pw6_lo : mcf_dsp_pw3_lo)(&job, groups);
        } else {
            (n == MCF_BLOCK ? mcf_dsp_pw6_sat : mcf_dsp_pw3_sat)(&job, groups);
        }
    }
}
#endif

/* Whether the 1x1 kernel takes blocks of 6 and 3 columns: on the DSP
 * extension, the layers the assembly handles (the generator's
 * requantization records, at least one channel pair), the others in 2-pixel
 * blocks; elsewhere always, in C. */
static int blocks_of_six(const matmul *m)
{
#ifdef MCF_DSP_ASM
    return m->out_c >= 2 && m->pw_requant != NULL;
#else
    (void)m;
    return 1;
#endif
}

/* Every output channel against n (6 or 3) columns, requantized into
 * out[j * out_c + oc]: in assembly (blocks_of_six), the last odd channel
 * (every channel without the assembly) in C. */
static void matmul_n(const matmul *m, const uint32_t *cols, int32_t n, int8_t *out)
{
    const int32_t out_c = m->out_c, groups = m->groups;
    const int lo = mcf_dsp_records_lo(m->output_offset);
    int32_t acc[MCF_BLOCK];
    int32_t oc = 0, j;
#ifdef MCF_DSP_ASM
    const int mode = MCF_DSP_FAST_SAT; /* records: mcf_dsp_records_fit */
    if (n == 4) {
        fused4(m, cols, out);
        oc = out_c & ~1;
    } else if (!m->wide) {
        fused(m, cols, n, out);
        oc = out_c & ~1;
    }
#else
    const int mode = m->fast;
#endif
    for (; oc < out_c; ++oc) {
        acc[0] = m->bias[oc];
        if (m->wide) { /* in its pair 4 words a group, (w0, w2) then (w1, w3) 2 words on; a last odd channel 2 */
            const int32_t paired = (oc | 1) < out_c;
            dot_wide(acc, m->filter + 2 * (oc & ~1) * groups + (oc & 1), paired ? 4 : 2, paired ? 2 : 1, cols,
                     groups, n);
        } else { /* channel oc's words: in its pair, every other word; a last odd channel on its own */
            dot_c(acc, m->filter + (oc & ~1) * groups + (oc & 1), (oc | 1) < out_c ? 2 : 1, cols, groups, n);
        }
        if (m->pw_requant != NULL && (oc | 1) < out_c) {
            /* what the assembly computes, from the channel's record */
            const int32_t *rq = m->pw_requant + 3 * ((oc & 1) * (out_c / 2) + oc / 2);
            for (j = 0; j < n; ++j) {
                out[j * out_c + oc] = mcf_dsp_out_records(acc[j], rq, lo);
            }
            continue;
        }
        for (j = 0; j < n; ++j) {
            out[j * out_c + oc] = mcf_dsp_out(acc[j], m->multiplier[oc], m->shift[oc], m->output_offset, m->act_min,
                                              m->act_max, mode);
        }
    }
}

/* A 3x3 window over 3 channels inside the input (a first layer's, rows at
 * src, src + step, src + 2 step): its 27 products as the 7 words of 4 int8
 * values the patch would hold, each read with one or two unaligned loads
 * (the bytes before a row's window and after the row are the input's), then
 * the two SXTB16 of each straight into the column (slot: its first word;
 * groups `stride` words apart). Product 27 is 0. */
MCF_INLINE void window_3x3x3(const int8_t *src, int32_t step, uint32_t *slot, const int32_t stride)
{
    const int8_t *r1 = src + step, *r2 = r1 + step;
    /* unrolled: each group's word goes straight from its loads to its two slots */
#define MCF_W333_PUT(i, value)                                                  \
    do {                                                                       \
        const uint32_t g_ = (value);                                           \
        slot[stride * (i)] = (uint32_t)__sxtb16(g_);                           \
        slot[stride * (i) + 1] = (uint32_t)mcf_sxtb16_ror8(g_);                \
    } while (0)
    MCF_W333_PUT(0, mcf_read32(src));
    MCF_W333_PUT(1, mcf_read32(src + 4));
    MCF_W333_PUT(2, (uint32_t)(uint8_t)src[8] | (mcf_read32(r1 - 1) & ~0xFFu));
    MCF_W333_PUT(3, mcf_read32(r1 + 3));
    MCF_W333_PUT(4, (uint32_t)(uint8_t)r1[7] | ((uint32_t)(uint8_t)r1[8] << 8) | (mcf_read32(r2 - 2) & ~0xFFFFu));
    MCF_W333_PUT(5, mcf_read32(r2 + 2));
    MCF_W333_PUT(6, mcf_read32(r2 + 5) >> 8);
#undef MCF_W333_PUT
}

/* columns_kxk_n for a 3x3 window over 3 channels with dilation 1 along the
 * rows (first layers): windows inside the input by window_3x3x3, a pointer
 * and the window's corner stepped column by column, the others by im2col.
 * Inlined with nc a constant at each call, so the stores take immediate
 * offsets. */
MCF_INLINE void columns_333(const mcf_conv2d_params *p, const int8_t *input, int32_t n, int32_t oy, int32_t ox,
                            int16_t *cols, const int32_t nc)
{
    const int32_t in_w = p->in_w, sw = p->stride_w, out_w = p->out_w, step = p->dilation_h * in_w * 3;
    const int32_t x_hi = in_w - 3, y_hi = p->in_h - 1 - 2 * p->dilation_h;
    int32_t y0 = oy * p->stride_h - p->pad_top, x0 = ox * sw - p->pad_left, c;
    const int8_t *src = input + (y0 * in_w + x0) * 3;
    for (c = 0; c < nc; ++c) {
        if (x0 >= 0 && x0 <= x_hi && y0 >= 0 && y0 <= y_hi) {
            window_3x3x3(src, step, (uint32_t *)(void *)cols + 2 * c, 2 * nc);
        } else {
            im2col(p, input, n + c, cols, c, nc);
        }
        x0 += sw;
        src += 3 * sw;
        if (++ox == out_w) {
            ox = 0;
            y0 += p->stride_h;
            x0 = -p->pad_left;
            src = input + (y0 * in_w + x0) * 3;
        }
    }
}

/* expand_rows for a window the padding cuts (dilation 1 along its rows, a
 * kernel row of one word: 4 bytes, columns lo .. hi - 1 inside the input):
 * per kernel row, the word of its bytes inside the input and the zero
 * point elsewhere, then expanded into column slot (n columns). A row cut on
 * one side reads the word that starts (ends) at its first (last) byte
 * inside, when that stays within the input, and shifts the zero point in. */
static __attribute__((noinline)) void expand_rows_cut(const mcf_conv2d_params *p, const int8_t *input, int32_t y0,
                                                      int32_t x0, int16_t *slot, int32_t n)
{
    const int32_t in_c = p->in_c, in_w = p->in_w, in_h = p->in_h, k_h = p->k_h, dilation = p->dilation_h;
    const int32_t lo = x0 < 0 ? -x0 : 0, hi = x0 + p->k_w > in_w ? in_w - x0 : p->k_w;
    const int32_t first = lo * in_c, end = hi > lo ? hi * in_c : first; /* bytes [first, end) of a row inside */
    const int32_t total = in_h * in_w * in_c, row_bytes = in_w * in_c;
    const uint32_t zero4 = (uint32_t)(uint8_t)(-p->input_offset) * 0x01010101u;
    const uint32_t left = 8u * (uint32_t)first, right = 8u * (uint32_t)(4 - end);
    const int32_t step = 2 * n;
    uint32_t *dst = (uint32_t *)(void *)slot;
    int32_t ky, j, at = (y0 * in_w + x0) * in_c; /* byte j of kernel row ky: input[at + j] */
    for (ky = 0; ky < k_h; ++ky, at += dilation * row_bytes, dst += step) {
        const int32_t iy = y0 + ky * dilation;
        uint32_t v = zero4;
        if (iy < 0 || iy >= in_h || end <= first) {
            /* the zero point */
        } else if (first == 0 && end == 4) {
            v = mcf_read32(input + at);
        } else if (end == 4 && at + first + 4 <= total) { /* cut on the left */
            v = (mcf_read32(input + at + first) << left) | (zero4 & ((1u << left) - 1u));
        } else if (first == 0 && at + end >= 4) { /* cut on the right */
            v = (mcf_read32(input + at + end - 4) >> right) | (zero4 & ~(0xFFFFFFFFu >> right));
        } else {
            for (j = first; j < end; ++j) {
                v = (v & ~(0xFFu << (8 * j))) | ((uint32_t)(uint8_t)input[at + j] << (8 * j));
            }
        }
        dst[0] = (uint32_t)__sxtb16(v);
        dst[1] = (uint32_t)mcf_sxtb16_ror8(v);
    }
}

/* The 6 columns of output pixels n .. n + 5 (the first at oy, ox) of a
 * k x k layer. A window inside the input (dilation 1 along its rows) is read
 * kernel row by kernel row, each row one run of k_w * in_c bytes: expanded
 * straight into its column when in_c is a multiple of 4, else copied word
 * by word into one contiguous patch (K <= MCF_PATCH_MAX) expanded in one
 * pass. Any other window: im2col. */
MCF_NO_LIBCALLS static void columns_kxk_n(const mcf_conv2d_params *p, const int8_t *input, int32_t n,
                                          int32_t oy, int32_t ox, int16_t *cols, const int32_t nc)
{
    mcf_patch patch;
    const int32_t in_c = p->in_c, in_w = p->in_w, k_h = p->k_h, k_w = p->k_w, run = k_w * in_c, k = k_h * run;
    const int32_t step = p->dilation_h * in_w * in_c, groups = (k + 3) / 4, y_span = (k_h - 1) * p->dilation_h;
    const int rows_ok = p->dilation_w == 1 && (run % 4 == 0 || k <= MCF_PATCH_MAX);
    /* the loop's parameters in locals: the column stores could alias *p */
    const int32_t out_w = p->out_w, stride_w = p->stride_w, in_h = p->in_h;
    const int w333 = in_c == 3 && k_h == 3 && k_w == 3;
    const int32_t x_last = in_w - k_w;
    int32_t c, ky, y0 = oy * p->stride_h - p->pad_top, x0 = ox * stride_w - p->pad_left;
    if (w333 && p->dilation_w == 1) {
        if (nc == 4) {
            columns_333(p, input, n, oy, ox, cols, 4);
        } else if (nc == MCF_BLOCK) {
            columns_333(p, input, n, oy, ox, cols, MCF_BLOCK);
        } else {
            columns_333(p, input, n, oy, ox, cols, nc);
        }
        return;
    }
    if (run % 4 != 0 && k <= MCF_PATCH_MAX) {
        patch.w[groups - 1] = 0; /* the products past K meet zero filter bytes */
    }
    for (c = 0; c < nc; ++c, ++ox, x0 += stride_w) {
        const int8_t *src;
        if (ox == out_w) {
            ox = 0;
            y0 += p->stride_h;
            x0 = -p->pad_left;
        }
        if (!rows_ok || x0 < 0 || x0 > x_last || y0 < 0 || y0 + y_span >= in_h) {
            if (p->dilation_w == 1 && run == 4) {
                expand_rows_cut(p, input, y0, x0, cols + 4 * c, nc);
            } else {
                im2col(p, input, n + c, cols, c, nc);
            }
            continue;
        }
        src = input + (y0 * in_w + x0) * in_c;
        if (w333) {
            window_3x3x3(src, step, (uint32_t *)(void *)cols + 2 * c, 2 * nc);
        } else if (run % 4 == 0) { /* whole words per kernel row */
            if (run < 16) {
                expand_rows(src, step, k_h, run / 4, cols + 4 * c, nc);
            } else {
                expand_runs(src, step, k_h, run / 4, cols + 4 * c, nc);
            }
        } else {
            for (ky = 0; ky < k_h; ++ky, src += step) {
                copy_run(patch.b + ky * run, src, run);
            }
            expand_patch(&patch, groups, cols, c, nc);
        }
    }
}

static void columns_kxk(const mcf_conv2d_params *p, const int8_t *input, int32_t n, int32_t oy, int32_t ox,
                        int16_t *cols)
{
    columns_kxk_n(p, input, n, oy, ox, cols, MCF_BLOCK);
}

/* The 4 columns of a k x k layer's output pixels n .. n + 3 (the pw4 blocks). */
static void columns_kxk_4(const mcf_conv2d_params *p, const int8_t *input, int32_t n, int16_t *cols)
{
    const int32_t oy = n / p->out_w;
    columns_kxk_n(p, input, n, oy, n - oy * p->out_w, cols, 4);
}

/* The 6 columns of output pixels n .. n + 5. direct: in_c is a multiple of
 * 4, the input word-aligned (arena buffers are), no padding and every pixel
 * inside the input, so each pixel's input words go straight to its column
 * (else through im2col). */
static void columns_6(const mcf_conv2d_params *p, const int8_t *input, int32_t n, int16_t *cols, int direct)
{
    const int32_t in_c = p->in_c, words = in_c / 4;
    int32_t c, oy = n / p->out_w, ox = n - oy * p->out_w;
    for (c = 0; c < MCF_BLOCK; ++c, ++ox) {
        const int8_t *src, *end;
        uint32_t *slot = (uint32_t *)(void *)cols + 2 * c;
        if (ox == p->out_w) {
            ox = 0;
            ++oy;
        }
        if (!direct) {
            columns_kxk(p, input, n, oy, ox, cols);
            return;
        }
        src = input + (oy * p->stride_h * p->in_w + ox * p->stride_w) * in_c;
        end = src + 4 * words;
#ifdef MCF_DSP_ASM
        if (words >= 4) { /* the same, 4 input words per 2 LDRD, one STRD per input word */
            const int8_t *end4 = src + 16 * (words / 4);
            uint32_t a, b, d, e, t;
            __asm__ volatile("1:\n\t"
                             "ldrd %[a], %[b], [%[src]], #8\n\t"
                             "ldrd %[d], %[e], [%[src]], #8\n\t"
                             "sxtb16 %[t], %[a]\n\t"
                             "sxtb16 %[a], %[a], ror #8\n\t"
                             "strd %[t], %[a], [%[slot]], #48\n\t"
                             "sxtb16 %[t], %[b]\n\t"
                             "sxtb16 %[b], %[b], ror #8\n\t"
                             "strd %[t], %[b], [%[slot]], #48\n\t"
                             "sxtb16 %[t], %[d]\n\t"
                             "sxtb16 %[d], %[d], ror #8\n\t"
                             "strd %[t], %[d], [%[slot]], #48\n\t"
                             "sxtb16 %[t], %[e]\n\t"
                             "sxtb16 %[e], %[e], ror #8\n\t"
                             "strd %[t], %[e], [%[slot]], #48\n\t"
                             "cmp %[src], %[end4]\n\t"
                             "bne 1b\n\t"
                             : [src] "+r"(src), [slot] "+r"(slot), [a] "=&r"(a), [b] "=&r"(b), [d] "=&r"(d),
                               [e] "=&r"(e), [t] "=&r"(t)
                             : [end4] "r"(end4)
                             : "cc", "memory");
        }
        if (src != end) { /* the last 1-3 words */
            uint32_t v, even;
            __asm__ volatile("1:\n\t"
                             "ldr %[v], [%[src]], #4\n\t"
                             "sxtb16 %[even], %[v]\n\t"
                             "sxtb16 %[v], %[v], ror #8\n\t"
                             "strd %[even], %[v], [%[slot]], #48\n\t"
                             "cmp %[src], %[end]\n\t"
                             "bne 1b\n\t"
                             : [src] "+r"(src), [slot] "+r"(slot), [v] "=&r"(v), [even] "=&r"(even)
                             : [end] "r"(end)
                             : "cc", "memory");
        }
#endif
        while (src != end) {
            const uint32_t v = mcf_read32(src);
            slot[0] = (uint32_t)__sxtb16(v);
            slot[1] = (uint32_t)mcf_sxtb16_ror8(v);
            slot += 2 * MCF_BLOCK;
            src += 4;
        }
    }
}

/* A 1x1 layer every output pixel of which reads an input pixel (no padding
 * on any side): its columns come straight from the input words (columns_4). */
static int inside_1x1(const mcf_conv2d_params *p)
{
    return p->k_h == 1 && p->k_w == 1 && p->pad_top == 0 && p->pad_left == 0 &&
           (p->out_h - 1) * p->stride_h < p->in_h && (p->out_w - 1) * p->stride_w < p->in_w;
}

/* Every block of 6 output pixels (their 6 columns, then every output
 * channel against them), then 3 of the 3 to 5 pixels left as a block of 3
 * columns. Returns the first pixel not done. */
static int32_t conv_blocks(const matmul *m, const mcf_conv2d_params *p, const int8_t *input, int8_t *output,
                           int16_t *cols)
{
    const int32_t pixels = p->out_h * p->out_w, out_c = p->out_c, k = p->k_h * p->k_w * p->in_c;
    const int32_t kp = (k + 3) / 4 * 4;
    const uint32_t *words = (const uint32_t *)(void *)cols;
    const int direct = inside_1x1(p) && p->in_c % 4 == 0 && ((uintptr_t)input & 3u) == 0;
    int32_t n, c;
    clear_tail(cols, k, kp, MCF_BLOCK);
    for (n = 0; n + MCF_BLOCK <= pixels; n += MCF_BLOCK) {
        columns_6(p, input, n, cols, direct);
        matmul_n(m, words, MCF_BLOCK, output + n * out_c);
    }
    if (pixels - n >= 3) {
        clear_tail(cols, k, kp, 3);
        for (c = 0; c < 3; ++c) {
            im2col(p, input, n + c, cols, c, 3);
        }
        matmul_n(m, words, 3, output + n * out_c);
        n += 3;
    }
    return n;
}

/* A k x k layer takes the 6-pixel blocks of the 1x1 kernel (im2col into 6
 * columns, then the same assembly) when it has at least 6 output pixels and
 * its 6 columns fit in MCF_KXK_BLOCK_BYTES; else columns of 2 pixels. */
#define MCF_KXK_BLOCK_BYTES 2048

static int32_t kxk_columns(const mcf_conv2d_params *p)
{
    const int32_t kp = (p->k_h * p->k_w * p->in_c + 3) / 4 * 4;
    return p->out_h * p->out_w >= MCF_BLOCK && MCF_BLOCK * 2 * kp <= MCF_KXK_BLOCK_BYTES ? MCF_BLOCK : 2;
}

int32_t mcf_dsp_conv2d_s8_scratch_size(const mcf_conv2d_params *p)
{
    return kxk_columns(p) * 2 * ((p->k_h * p->k_w * p->in_c + 3) / 4 * 4);
}

int mcf_dsp_conv2d_s8(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch)
{
    int16_t *cols = (int16_t *)(void *)scratch;
    matmul m;
    int32_t n = 0;
    if (!conv_args_ok(p, input, output, scratch)) {
        return MCF_ERR_ARG;
    }
    conv_matmul_init(&m, p);
    m.pw_requant = mcf_dsp_records_fit(m.fast, p->shift, p->out_c) ? p->pw_requant : NULL;
    if (kxk_columns(p) == MCF_BLOCK && blocks_of_six(&m)) {
        n = conv_blocks(&m, p, input, output, cols);
    }
    conv_rest(&m, p, input, output, cols, n);
    return MCF_OK;
}

int32_t mcf_dsp_conv2d_1x1_s8_scratch_size(const mcf_conv2d_params *p)
{
    const int32_t columns = p->out_h * p->out_w >= MCF_BLOCK ? MCF_BLOCK : 2;
    return columns * 2 * ((p->in_c + 3) / 4 * 4);
}

int mcf_dsp_conv2d_1x1_s8(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch)
{
    int16_t *cols = (int16_t *)(void *)scratch;
    matmul m;
    int32_t n = 0;
    if (!conv_args_ok(p, input, output, scratch) || p->k_h != 1 || p->k_w != 1) {
        return MCF_ERR_ARG;
    }
    conv_matmul_init(&m, p);
    m.pw_requant = mcf_dsp_records_fit(m.fast, p->shift, p->out_c) ? p->pw_requant : NULL;
    if (p->out_h * p->out_w >= MCF_BLOCK && blocks_of_six(&m)) { /* else the scratch may hold 2 columns only */
        n = conv_blocks(&m, p, input, output, cols);
    }
    conv_rest(&m, p, input, output, cols, n);
    return MCF_OK;
}

int32_t mcf_dsp_fully_connected_s8_scratch_size(const mcf_fully_connected_params *p)
{
    return p->rows > 1 ? 2 * 2 * ((p->in_features + 3) / 4 * 4) : 0;
}

int mcf_dsp_fully_connected_s8(const mcf_fully_connected_params *p, const int8_t *input, int8_t *output,
                               int8_t *scratch)
{
    const int32_t k = p->in_features, kp = (k + 3) / 4 * 4, n_out = p->out_features;
    int16_t *cols = (int16_t *)(void *)scratch;
    const uint32_t *words = (const uint32_t *)(void *)scratch;
    matmul m;
    int32_t row;

    if (p->rows <= 0 || k <= 0 || n_out <= 0 || p->act_min < -128 || p->act_max > 127 ||
        p->act_min > p->act_max || p->filter == NULL || p->bias == NULL || p->multiplier == NULL ||
        p->shift == NULL || input == NULL || output == NULL || (scratch == NULL && p->rows > 1) ||
        !shifts_valid(p->shift, n_out)) {
        return MCF_ERR_ARG;
    }
    matmul_init(&m, p->filter, p->bias, p->multiplier, p->shift, n_out, k, p->output_offset, p->act_min,
                p->act_max);
    m.fast = mcf_dsp_mode(p->per_channel, p->act_min, p->act_max);
    if (p->rows == 1) {
        matmul_row_any(&m, input, k, output);
        return MCF_OK;
    }
    clear_tail(cols, k, kp, 2);
    for (row = 0; row + 1 < p->rows; row += 2) {
        expand(input + row * k, k, cols, 0, 0, 2);
        expand(input + (row + 1) * k, k, cols, 1, 0, 2);
        matmul_2_any(&m, words, output + row * n_out, output + (row + 1) * n_out);
    }
    if (row < p->rows) {
        expand(input + row * k, k, cols, 0, 0, 2);
        matmul_1_any(&m, words, output + row * n_out);
    }
    return MCF_OK;
}

/* The 1x1 variant without scratch (mcf_dsp_conv2d_1x1_s8_rows): each output
 * pixel is one row of a fully connected layer read straight from the int8
 * input, 4 output channels per input word sign-extended once (matmul_row).
 * A little slower than the 6-pixel blocks; no arena bytes, so the planner
 * takes it where the columns would grow the arena beyond its limit. */
/*
 * Fully connected with one input row on the wide layout
 * (mcf_dsp_fully_connected_s8_w6): the generator widens the filter to int16
 * offline, 6 output rows a block: per block and group of 4 products, the 6
 * rows' (w0, w2) then their (w1, w3), 12 words (a last block of 1-5 rows:
 * 2 words a row). On Cortex-M the block in assembly (mcf_dsp_fc6w): per
 * group one input word, its two SXTB16 halves, 3 LDM of 4 filter words and
 * 12 SMLAD for 24 multiply-accumulates, 4 groups unrolled; a last partial
 * group (K % 4 products) and the requantization in C.
 */
#ifdef MCF_DSP_ASM
void mcf_dsp_fc6w(const uint32_t *w, const int8_t *x, int32_t groups, int32_t *acc);
#define MCF_FC6W_GROUP                          \
    "ldr.w r6, [lr], #4\n\t"                    \
    "sxtb16 r7, r6, ror #8\n\t"                 \
    "sxtb16 r6, r6\n\t"                         \
    "ldmia.w r12!, {r8-r11}\n\t"                \
    "smlad r0, r8, r6, r0\n\t"                  \
    "smlad r1, r9, r6, r1\n\t"                  \
    "smlad r2, r10, r6, r2\n\t"                 \
    "smlad r3, r11, r6, r3\n\t"                 \
    "ldmia.w r12!, {r8-r11}\n\t"                \
    "smlad r4, r8, r6, r4\n\t"                  \
    "smlad r5, r9, r6, r5\n\t"                  \
    "smlad r0, r10, r7, r0\n\t"                 \
    "smlad r1, r11, r7, r1\n\t"                 \
    "ldmia.w r12!, {r8-r11}\n\t"                \
    "smlad r2, r8, r7, r2\n\t"                  \
    "smlad r3, r9, r7, r3\n\t"                  \
    "smlad r4, r10, r7, r4\n\t"                 \
    "smlad r5, r11, r7, r5\n\t"
/* acc[0..5]: the biases in, the sums out; groups >= 1 whole groups of x (any alignment). */
__asm__(MCF_ASM_FUNCTION("mcf_dsp_fc6w")
        "add r2, r1, r2, lsl #2\n\t"  /* the input's end */
        "push {r2, r3}\n\t"
        "mov r12, r0\n\t"
        "mov lr, r1\n\t"
        "sub r6, r2, r1\n\t"
        "lsr r6, r6, #2\n\t"
        "rsb r6, r6, #0\n\t"
        "and r6, r6, #3\n\t"          /* groups the first pass skips */
        "adr.w r7, 1f\n\t"
        "mov r8, #72\n\t"             /* bytes per group: 18 32-bit instructions */
        "mla r7, r6, r8, r7\n\t"
        "orr r7, r7, #1\n\t"          /* entry (Thumb) */
        "ldm r3, {r0-r5}\n\t"
        "bx r7\n\t"
        ".p2align 2\n"
        "1:\n\t" MCF_FC6W_GROUP MCF_FC6W_GROUP MCF_FC6W_GROUP MCF_FC6W_GROUP
        "ldr r8, [sp]\n\t"
        "cmp lr, r8\n\t"
        "bne 1b\n\t"
        "ldr r8, [sp, #4]\n\t"
        "stm r8, {r0-r5}\n\t"
        "add sp, sp, #8\n\t"
        "pop {r4-r11, pc}\n\t"
        ".size mcf_dsp_fc6w, .-mcf_dsp_fc6w\n\t"
        ".popsection");
/*
 * The whole layer when it has records (mcf_dsp_fc6w_records): per block of 6
 * rows the biases by one LDM, the groups 8 at a time, then each row's record
 * by one LDM and its requantization (mcf_dsp_out_record) straight to the
 * output.
 */
typedef struct {
    const int8_t *x;     /* 0: the input row, any alignment */
    const int8_t *x_end; /* 4: x + K, K a multiple of 4 */
    const uint32_t *w;   /* 8: the first block's words */
    const int32_t *bias; /* 12 */
    const int32_t *rec;  /* 16: 3 words a row */
    int8_t *out;         /* 20 */
    int8_t *out_end;     /* 24: out + 6 x the blocks (>= 1) */
} mcf_fc6_job;
void mcf_dsp_fc6w_records(const mcf_fc6_job *job);
/* a row's record into r7-r9 (m, e, rounding), its requantized acc to the output (r10) */
#define MCF_FC6W_OUT(acc) "ldmia r6!, {r7-r9}\n\t" MCF_ASM_REQUANT(acc, acc, "r9", "r7", "r8", "r9") \
    "strb " acc ", [r10], #1\n\t"
__asm__(MCF_ASM_FUNCTION("mcf_dsp_fc6w_records")
        "ldmia r0, {r1-r7}\n\t"
        "sub r8, r2, r1\n\t"
        "lsr r8, r8, #2\n\t"
        "rsb r8, r8, #0\n\t"
        "and r8, r8, #7\n\t"          /* groups the first pass skips */
        "adr.w r9, 1f\n\t"
        "mov r10, #72\n\t"            /* bytes per group */
        "mla r9, r8, r10, r9\n\t"
        "orr r9, r9, #1\n\t"          /* entry (Thumb) */
        "push {r1, r2, r4, r5, r6, r7, r9}\n\t" /* 0 x, 4 x_end, 8 bias, 12 rec, 16 out, 20 out_end, 24 entry */
        "mov r12, r3\n"
        "5:\n\t"
        "ldr lr, [sp, #8]\n\t"
        "ldmia lr!, {r0-r5}\n\t"       /* the block's biases */
        "str lr, [sp, #8]\n\t"
        "ldr lr, [sp]\n\t"
        "ldr r6, [sp, #24]\n\t"
        "bx r6\n\t"
        ".p2align 2\n"
        "1:\n\t" MCF_FC6W_GROUP MCF_FC6W_GROUP MCF_FC6W_GROUP MCF_FC6W_GROUP
        MCF_FC6W_GROUP MCF_FC6W_GROUP MCF_FC6W_GROUP MCF_FC6W_GROUP
        "ldr r8, [sp, #4]\n\t"
        "cmp lr, r8\n\t"
        "bne 1b\n\t"
        "ldr r6, [sp, #12]\n\t"
        "ldr r10, [sp, #16]\n\t"
        MCF_FC6W_OUT("r0") MCF_FC6W_OUT("r1") MCF_FC6W_OUT("r2")
        MCF_FC6W_OUT("r3") MCF_FC6W_OUT("r4") MCF_FC6W_OUT("r5")
        "str r6, [sp, #12]\n\t"
        "str r10, [sp, #16]\n\t"
        "ldr r11, [sp, #20]\n\t"
        "cmp r10, r11\n\t"
        "bne 5b\n\t"
        "add sp, sp, #28\n\t"
        "pop {r4-r11, pc}\n\t"
        ".size mcf_dsp_fc6w_records, .-mcf_dsp_fc6w_records\n\t"
        ".popsection");
#undef MCF_FC6W_OUT
#undef MCF_FC6W_GROUP
#endif

#ifndef MCF_DSP_ASM
/* the 6 rows' sums of a block: acc[] holds the biases in, the sums out; w the
 * block's words (per group the rows' (w0, w2), then their (w1, w3)). */
static void fc_block_c(const uint32_t *w, const int8_t *x, int32_t groups, int32_t *acc)
{
    int32_t g, r;
    for (g = 0; g < groups; ++g, w += 12) {
        const uint32_t v = mcf_read32(x + 4 * g);
        const int32_t even = __sxtb16(v), odd = mcf_sxtb16_ror8(v);
        for (r = 0; r < 6; ++r) {
            acc[r] = __smlad((int32_t)w[6 + r], odd, __smlad((int32_t)w[r], even, acc[r]));
        }
    }
}
#endif

int32_t mcf_dsp_fully_connected_s8_w6_scratch_size(const mcf_fully_connected_params *p)
{
    (void)p;
    return 0;
}

/* The layer in one requantization mode (a constant in each copy); from the
 * records when it has them. Every block has 6 rows of words (a last block's
 * padding rows are zero). */
MCF_INLINE void fc_w6_run(const mcf_fully_connected_params *p, const int8_t *input, int8_t *output, int mode)
{
    const int32_t k = p->in_features, n_out = p->out_features, full = k / 4, groups = (k + 3) / 4;
    const int32_t output_offset = p->output_offset, act_min = p->act_min, act_max = p->act_max;
    const int32_t *bias = p->bias, *multiplier = p->multiplier, *shift = p->shift, *rec = p->pw_requant;
    const uint32_t *w = (const uint32_t *)(const void *)p->filter;
    uint32_t last = 0;
    int32_t oc, r, i;
    for (i = 0; i < k - 4 * full; ++i) { /* the last partial group: products past K read 0 */
        last |= (uint32_t)(uint8_t)input[4 * full + i] << (8 * i);
    }
    for (oc = 0; oc < n_out; oc += 6) {
        const int32_t rows = n_out - oc < 6 ? n_out - oc : 6;
        int32_t acc[6] = {0, 0, 0, 0, 0, 0};
        for (r = 0; r < rows; ++r) {
            acc[r] = bias[oc + r];
        }
        if (full > 0) {
#ifdef MCF_DSP_ASM
            mcf_dsp_fc6w(w, input, full, acc);
#else
            fc_block_c(w, input, full, acc);
#endif
        }
        w += 12 * full;
        if (full < groups) {
            const int32_t even = __sxtb16(last), odd = mcf_sxtb16_ror8(last);
            for (r = 0; r < rows; ++r) {
                acc[r] = __smlad((int32_t)w[6 + r], odd, __smlad((int32_t)w[r], even, acc[r]));
            }
            w += 12;
        }
        for (r = 0; r < rows; ++r) {
            output[oc + r] = mode == MCF_DSP_FAST_SAT && rec != NULL
                                 ? mcf_dsp_out_record(acc[r], rec + 3 * (oc + r))
                                 : mcf_dsp_out(acc[r], multiplier[oc + r], shift[oc + r], output_offset, act_min,
                                               act_max, mode);
        }
    }
}

#ifdef MCF_DSP_ASM
/* The layer with records and K a multiple of 4 in assembly: the blocks of 6
 * rows, then a last one of 1-5 (its padding rows' words, biases and records
 * are there: kernels_arm_dsp.h) into a buffer. Reads no shift. */
MCF_INLINE void fc_w6_records(const mcf_fully_connected_params *p, const int8_t *input, int8_t *output)
{
    const int32_t blocks = p->out_features / 6, rows = p->out_features - 6 * blocks;
    const uint32_t *w = (const uint32_t *)(const void *)p->filter;
    int8_t last[6];
    mcf_fc6_job job = {input, input + p->in_features, w, p->bias, p->pw_requant, output, output + 6 * blocks};
    if (blocks > 0) {
        mcf_dsp_fc6w_records(&job);
    }
    if (rows > 0) {
        job.w = w + 3 * p->in_features * blocks;
        job.bias = p->bias + 6 * blocks;
        job.rec = p->pw_requant + 18 * blocks;
        job.out = last;
        job.out_end = last + 6;
        mcf_dsp_fc6w_records(&job);
        memcpy(output + 6 * blocks, last, (size_t)rows);
    }
}
#endif

int mcf_dsp_fully_connected_s8_w6(const mcf_fully_connected_params *p, const int8_t *input, int8_t *output,
                                  int8_t *scratch)
{
    const int mode = mcf_dsp_mode(p->per_channel, p->act_min, p->act_max);
    (void)scratch;
    if (p->rows != 1 || p->in_features <= 0 || p->out_features <= 0 || p->act_min < -128 || p->act_max > 127 ||
        p->act_min > p->act_max || p->filter == NULL || p->bias == NULL || p->multiplier == NULL ||
        p->shift == NULL || input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
#ifdef MCF_DSP_ASM
    if (mode == MCF_DSP_FAST_SAT && p->pw_requant != NULL && p->in_features % 4 == 0) {
        fc_w6_records(p, input, output);
        return MCF_OK;
    }
#endif
    if (!shifts_valid(p->shift, p->out_features)) {
        return MCF_ERR_ARG;
    }
    switch (mode) {
    case MCF_DSP_FAST_SAT:
        fc_w6_run(p, input, output, MCF_DSP_FAST_SAT);
        break;
    case MCF_DSP_FAST:
        fc_w6_run(p, input, output, MCF_DSP_FAST);
        break;
    default:
        fc_w6_run(p, input, output, MCF_DSP_GENERAL);
        break;
    }
    return MCF_OK;
}

int32_t mcf_dsp_conv2d_1x1_s8_rows_scratch_size(const mcf_conv2d_params *p)
{
    (void)p;
    return 0;
}

int mcf_dsp_conv2d_1x1_s8_rows(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch)
{
    static const int8_t none = 0;
    matmul m;
    int32_t oy, ox;
    (void)scratch;
    if (!conv_args_ok(p, input, output, &none) || !inside_1x1(p)) {
        return MCF_ERR_ARG;
    }
    conv_matmul_init(&m, p);
    for (oy = 0; oy < p->out_h; ++oy) {
        const int8_t *row = input + oy * p->stride_h * p->in_w * p->in_c;
        int8_t *out = output + oy * p->out_w * p->out_c;
        for (ox = 0; ox < p->out_w; ++ox, out += p->out_c) {
            matmul_row_any(&m, row + ox * p->stride_w * p->in_c, p->in_c, out);
        }
    }
    return MCF_OK;
}

/* The 4 columns of output pixels n .. n + 3 of a 1x1 layer (the input read
 * a word at a time, any alignment; in_c % 4 values one by one). */
#ifdef MCF_DSP_ASM
/* The 4 words in r8-r11 -> 8 words of int16 pairs (SXTB16, then ROR #8, per
 * word) stored at r3 on (r3 moves past them; r4-r11 are overwritten). */
#define MCF_ASM_WIDEN4                                                          \
    "sxtb16 r4, r8\n\t"                                                        \
    "sxtb16 r5, r8, ror #8\n\t"                                                \
    "sxtb16 r6, r9\n\t"                                                        \
    "sxtb16 r7, r9, ror #8\n\t"                                                \
    "sxtb16 r8, r10\n\t"                                                       \
    "sxtb16 r9, r10, ror #8\n\t"                                               \
    "sxtb16 r10, r11\n\t"                                                      \
    "sxtb16 r11, r11, ror #8\n\t"                                              \
    "stmia r3!, {r4-r11}\n\t"

/* `words` words of each of 4 pixels (src[0..3], any alignment) -> the
 * columns of 4 (one group, 8 words, per word): per group 4 loads back to
 * back, 8 SXTB16, one STM. words >= 1. */
void mcf_dsp_cols4(const int8_t *const *src, int32_t words, uint32_t *dst);
__asm__(MCF_ASM_FUNCTION("mcf_dsp_cols4")
        "mov lr, r1\n\t"
        "mov r3, r2\n\t"
        "ldm r0, {r0, r1, r2, r12}\n"
        "1:\n\t"
        "ldr r8, [r0], #4\n\t"
        "ldr r9, [r1], #4\n\t"
        "ldr r10, [r2], #4\n\t"
        "ldr r11, [r12], #4\n\t"
        MCF_ASM_WIDEN4
        "subs lr, lr, #1\n\t"
        "bne 1b\n\t"
        "pop {r4-r11, pc}\n\t"
        ".size mcf_dsp_cols4, .-mcf_dsp_cols4\n\t"
        ".popsection");
#endif

static void columns_4(const mcf_conv2d_params *p, const int8_t *input, int32_t n, int16_t *cols)
{
    const int32_t in_c = p->in_c, words = in_c / 4;
    const int8_t *src[4];
    int32_t c;
    if (p->stride_h == 1 && p->stride_w == 1 && p->in_w == p->out_w) { /* pixel n is input pixel n */
        for (c = 0; c < 4; ++c) {
            src[c] = input + (n + c) * in_c;
        }
    } else {
        int32_t oy = n / p->out_w, ox = n - oy * p->out_w;
        for (c = 0; c < 4; ++c, ++ox) {
            if (ox == p->out_w) {
                ox = 0;
                ++oy;
            }
            src[c] = input + (oy * p->stride_h * p->in_w + ox * p->stride_w) * in_c;
        }
    }
#ifdef MCF_DSP_ASM
    if (words > 0) {
        mcf_dsp_cols4(src, words, (uint32_t *)(void *)cols);
    }
#else
    for (c = 0; c < 4; ++c) {
        uint32_t *slot = (uint32_t *)(void *)cols + 2 * c;
        int32_t i;
        for (i = 0; i < words; ++i, slot += 8) {
            const uint32_t v = mcf_read32(src[c] + 4 * i);
            slot[0] = (uint32_t)__sxtb16(v);
            slot[1] = (uint32_t)mcf_sxtb16_ror8(v);
        }
    }
#endif
    for (c = 0; c < 4 && 4 * words < in_c; ++c) {
        expand(src[c] + 4 * words, in_c - 4 * words, cols, c, 4 * words, 4);
    }
}

/* The variants without scratch that keep the blocks and leave the input as
 * it is (mcf_dsp_conv2d_s8_tail, _tailw: a 1x1 layer, or a k x k window of
 * K <= MCF_PATCH_MAX products, e.g. a first layer whose input is the
 * model's): the 4 columns of the pw4 blocks live in the last bytes of the
 * output (word-aligned), which no block writes before the columns' last
 * use: every block whose outputs end below them runs there; the pixels after
 * them as fully connected rows, read in place (1x1) or from the window
 * gathered into a patch on the stack (k x k). The output never aliases the
 * input (a convolution is never planned in place). */
int32_t mcf_dsp_conv2d_s8_tail_scratch_size(const mcf_conv2d_params *p)
{
    (void)p;
    return 0;
}

/* The 4 columns of pixels n .. n + 3: a 1x1 layer's read straight from its input words. */
static void columns_of_4(const mcf_conv2d_params *p, const int8_t *input, int32_t n, int16_t *cols, int pointwise)
{
    if (pointwise) {
        columns_4(p, input, n, cols);
    } else {
        columns_kxk_4(p, input, n, cols);
    }
}

/* m for the 2 x 4 (and 6-pixel) blocks: the records when the layer's
 * requantization fits them (mcf_dsp_records_fit), the wide layout or not;
 * 0 when wide and without records (the wide blocks requantize from them). */
static int blocks_matmul_init(matmul *m, const mcf_conv2d_params *p, int wide)
{
    conv_matmul_init(m, p);
    m->wide = wide;
    m->pw_requant = mcf_dsp_records_fit(m->fast, p->shift, p->out_c) ? p->pw_requant : NULL;
    return !wide || m->pw_requant != NULL;
}

/* One pixel's outputs on the wide layout, its K int8 inputs read in place
 * (the tailw variant's last pixels): per channel pair and group, the input
 * word's SXTB16 halves against the pair's 4 words; a last partial group's
 * products past K read 0; a last odd channel on its own. */
MCF_INLINE int8_t wide_out(const matmul *m, int32_t acc, int32_t oc, int lo)
{
    if (m->pw_requant != NULL && (oc | 1) < m->out_c) {
        return mcf_dsp_out_records(acc, m->pw_requant + 3 * ((oc & 1) * (m->out_c / 2) + oc / 2), lo);
    }
    return mcf_dsp_out(acc, m->multiplier[oc], m->shift[oc], m->output_offset, m->act_min, m->act_max, m->fast);
}

static void wide_row(const matmul *m, const int8_t *x, int32_t k, int8_t *out)
{
    const int32_t out_c = m->out_c, groups = m->groups, full = k / 4;
    const int lo = mcf_dsp_records_lo(m->output_offset);
    uint32_t last = 0;
    int32_t oc, g, i;
    for (i = 0; i < k - 4 * full; ++i) {
        last |= (uint32_t)(uint8_t)x[4 * full + i] << (8 * i);
    }
    for (oc = 0; oc + 1 < out_c; oc += 2) {
        const uint32_t *w = m->filter + 2 * oc * groups;
        const int8_t *xg = x;
        int32_t a = m->bias[oc], b = m->bias[oc + 1];
        for (g = full; g > 0; --g, w += 4, xg += 4) {
            const uint32_t v = mcf_read32(xg);
            const int32_t even = __sxtb16(v), odd = mcf_sxtb16_ror8(v);
            a = __smlad((int32_t)w[0], even, a);
            b = __smlad((int32_t)w[1], even, b);
            a = __smlad((int32_t)w[2], odd, a);
            b = __smlad((int32_t)w[3], odd, b);
        }
        if (full < groups) {
            const int32_t even = __sxtb16(last), odd = mcf_sxtb16_ror8(last);
            a = __smlad((int32_t)w[2], odd, __smlad((int32_t)w[0], even, a));
            b = __smlad((int32_t)w[3], odd, __smlad((int32_t)w[1], even, b));
        }
        out[oc] = wide_out(m, a, oc, lo);
        out[oc + 1] = wide_out(m, b, oc + 1, lo);
    }
    if (oc < out_c) {
        const uint32_t *w = m->filter + 2 * oc * groups;
        int32_t a = m->bias[oc];
        for (g = 0; g < groups; ++g, w += 2) {
            const uint32_t v = g < full ? mcf_read32(x + 4 * g) : last;
            a = __smlad((int32_t)w[1], mcf_sxtb16_ror8(v), __smlad((int32_t)w[0], __sxtb16(v), a));
        }
        out[oc] = wide_out(m, a, oc, lo);
    }
}

static int tail_blocks(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int wide)
{
    static const int8_t none = 0;
    const int32_t pixels = p->out_h * p->out_w, out_c = p->out_c, k = p->k_h * p->k_w * p->in_c;
    const int32_t at = (pixels * out_c - 4 * 2 * ((k + 3) / 4 * 4)) & ~3;
    const int pointwise = inside_1x1(p);
    matmul m;
    int32_t n = 0, oy, ox;
    if (!conv_args_ok(p, input, output, &none) || (!pointwise && k > MCF_PATCH_MAX)) {
        return MCF_ERR_ARG;
    }
    if (!blocks_matmul_init(&m, p, wide)) {
        return MCF_ERR_ARG;
    }
    if (at >= 4 * out_c && ((uintptr_t)output & 3u) == 0 && blocks_of_six(&m)) {
        int16_t *cols = (int16_t *)(void *)(output + at);
        clear_tail(cols, k, (k + 3) / 4 * 4, 4);
        for (; (n + 4) * out_c <= at; n += 4) {
            columns_of_4(p, input, n, cols, pointwise);
            matmul_n(&m, (const uint32_t *)(const void *)cols, 4, output + n * out_c);
        }
    }
    for (oy = n / p->out_w, ox = n - oy * p->out_w; n < pixels; ++n, ++ox) {
        mcf_patch patch;
        const int8_t *x;
        if (ox == p->out_w) {
            ox = 0;
            ++oy;
        }
        if (pointwise) {
            x = input + (oy * p->stride_h * p->in_w + ox * p->stride_w) * p->in_c;
        } else {
            gather_patch(p, input, oy * p->stride_h - p->pad_top, ox * p->stride_w - p->pad_left, &patch);
            x = patch.b;
        }
        if (wide) {
            wide_row(&m, x, k, output + n * out_c);
        } else {
            matmul_row_any(&m, x, k, output + n * out_c);
        }
    }
    return MCF_OK;
}

/* A variant without scratch on the int8 words, and its twin on the wide layout. */
#define MCF_NO_SCRATCH_PAIR(name, blocks)                                                                    \
    int name(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch)                  \
    {                                                                                                          \
        (void)scratch;                                                                                         \
        return blocks(p, input, output, 0);                                                                    \
    }                                                                                                          \
    int32_t name##w_scratch_size(const mcf_conv2d_params *p)                                                   \
    {                                                                                                          \
        (void)p;                                                                                               \
        return 0;                                                                                              \
    }                                                                                                          \
    int name##w(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch)               \
    {                                                                                                          \
        (void)scratch;                                                                                         \
        return blocks(p, input, output, 1);                                                                    \
    }
/* tailw: the pw4w blocks, the last pixels by wide_row */
MCF_NO_SCRATCH_PAIR(mcf_dsp_conv2d_s8_tail, tail_blocks)

/* The 1x1 variant in blocks of 4 output pixels, 2 channels at a time
 * (mcf_dsp_conv2d_1x1_s8_pw4; on Cortex-M the assembly mcf_dsp_pw4x2):
 * each column word is loaded once per channel pair, not once per channel.
 * Scratch: 4 columns (2 with fewer than 4 pixels); the pixels after the
 * blocks as pairs. */
int32_t mcf_dsp_conv2d_1x1_s8_pw4_scratch_size(const mcf_conv2d_params *p)
{
    return (p->out_h * p->out_w >= 4 ? 4 : 2) * 2 * ((p->in_c + 3) / 4 * 4);
}

int mcf_dsp_conv2d_1x1_s8_pw4(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch)
{
    const int32_t pixels = p->out_h * p->out_w, in_c = p->in_c, kp = (in_c + 3) / 4 * 4;
    int16_t *cols = (int16_t *)(void *)scratch;
    matmul m;
    int32_t n = 0;
    if (!conv_args_ok(p, input, output, scratch) || !inside_1x1(p)) {
        return MCF_ERR_ARG;
    }
    conv_matmul_init(&m, p);
    m.pw_requant = mcf_dsp_records_fit(m.fast, p->shift, p->out_c) ? p->pw_requant : NULL;
    if (pixels >= 4 && blocks_of_six(&m)) {
        clear_tail(cols, in_c, kp, 4);
        for (; n + 4 <= pixels; n += 4) {
            columns_4(p, input, n, cols);
            matmul_n(&m, (const uint32_t *)(const void *)cols, 4, output + n * p->out_c);
        }
    }
    conv_rest(&m, p, input, output, cols, n);
    return MCF_OK;
}

/* The k x k variant in the 2 x 4 blocks (mcf_dsp_conv2d_s8_pw4): im2col of 4
 * output pixels, then the pw4 assembly; the pixels after the blocks as
 * pairs. Scratch: 4 columns (2 with fewer than 4 pixels). */
int32_t mcf_dsp_conv2d_s8_pw4_scratch_size(const mcf_conv2d_params *p)
{
    return (p->out_h * p->out_w >= 4 ? 4 : 2) * 2 * ((p->k_h * p->k_w * p->in_c + 3) / 4 * 4);
}

int mcf_dsp_conv2d_s8_pw4(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch)
{
    const int32_t pixels = p->out_h * p->out_w, k = p->k_h * p->k_w * p->in_c, kp = (k + 3) / 4 * 4;
    int16_t *cols = (int16_t *)(void *)scratch;
    matmul m;
    int32_t n = 0;
    if (!conv_args_ok(p, input, output, scratch)) {
        return MCF_ERR_ARG;
    }
    conv_matmul_init(&m, p);
    m.pw_requant = mcf_dsp_records_fit(m.fast, p->shift, p->out_c) ? p->pw_requant : NULL;
    if (pixels >= 4 && blocks_of_six(&m)) {
        clear_tail(cols, k, kp, 4);
        for (; n + 4 <= pixels; n += 4) {
            columns_kxk_4(p, input, n, cols);
            matmul_n(&m, (const uint32_t *)(const void *)cols, 4, output + n * p->out_c);
        }
    }
    conv_rest(&m, p, input, output, cols, n);
    return MCF_OK;
}

/*
 * The pw4 variants on the wide layout (mcf_dsp_conv2d_1x1_s8_pw4w,
 * mcf_dsp_conv2d_s8_pw4w): the generator widens the filter to int16 pairs
 * offline (twice the int8 filter's flash), so the blocks' assembly loads
 * them with no SXTB16 (mcf_dsp_pw4x2w); the pixels after the blocks as one
 * last block of 1-3 columns. Requires the records (the generator offers the
 * variant only then). Scratch as pw4.
 */
/* The pixels from n on (fewer than 4): with 4 pixels or more in the layer,
 * one more block of 4 ending at the last pixel (the earlier pixels in it are
 * computed again, to the same bytes), when its columns may start at pixel
 * `lowest` or later; else one block of that many columns (C). */
static void wide_rest(const matmul *m, const mcf_conv2d_params *p, const int8_t *input, int8_t *output,
                      int16_t *cols, int32_t n, int pointwise, int32_t lowest)
{
    const int32_t pixels = p->out_h * p->out_w, k = p->k_h * p->k_w * p->in_c, kp = (k + 3) / 4 * 4;
    if (n >= pixels) {
        return;
    }
    if (pixels >= 4 && pixels - 4 >= lowest) { /* the columns of 4 are in place (clear_tail) */
        n = pixels - 4;
        columns_of_4(p, input, n, cols, pointwise);
        matmul_n(m, (const uint32_t *)(const void *)cols, 4, output + n * p->out_c);
    } else {
        const int32_t rest = pixels - n, oy = n / p->out_w;
        clear_tail(cols, k, kp, rest);
        columns_kxk_n(p, input, n, oy, n - oy * p->out_w, cols, rest);
        matmul_n(m, (const uint32_t *)(const void *)cols, rest, output + n * p->out_c);
    }
}

static int conv_wide(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch,
                     int pointwise)
{
    const int32_t pixels = p->out_h * p->out_w, k = p->k_h * p->k_w * p->in_c, kp = (k + 3) / 4 * 4;
    int16_t *cols = (int16_t *)(void *)scratch;
    matmul m;
    int32_t n = 0;
    if (!conv_args_ok(p, input, output, scratch) || (pointwise && !inside_1x1(p))) {
        return MCF_ERR_ARG;
    }
    if (!blocks_matmul_init(&m, p, 1)) {
        return MCF_ERR_ARG;
    }
    if (pixels >= 4) {
        clear_tail(cols, k, kp, 4);
        for (; n + 4 <= pixels; n += 4) {
            columns_of_4(p, input, n, cols, pointwise);
            matmul_n(&m, (const uint32_t *)(const void *)cols, 4, output + n * p->out_c);
        }
    }
    wide_rest(&m, p, input, output, cols, n, pointwise, 0);
    return MCF_OK;
}

int32_t mcf_dsp_conv2d_1x1_s8_pw4w_scratch_size(const mcf_conv2d_params *p)
{
    return mcf_dsp_conv2d_1x1_s8_pw4_scratch_size(p);
}

int mcf_dsp_conv2d_1x1_s8_pw4w(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch)
{
    return conv_wide(p, input, output, scratch, 1);
}

int32_t mcf_dsp_conv2d_s8_pw4w_scratch_size(const mcf_conv2d_params *p)
{
    return mcf_dsp_conv2d_s8_pw4_scratch_size(p);
}

int mcf_dsp_conv2d_s8_pw4w(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch)
{
    return conv_wide(p, input, output, scratch, 0);
}

/*
 * The k x k variant without im2col (mcf_dsp_conv2d_s8_winw): per output row,
 * the window of input rows it reads is widened once into the scratch, pixel
 * by pixel (x of the padded row), each pixel's k_h rows of in_c values (the
 * pairs SXTB16 makes of each word; the zero point in the padding). Output
 * pixel x's column is then the contiguous run of pixels x .. x + k_w - 1:
 * the generator orders the filter's products (kx, ky, c) to match. Blocks of
 * 4 pixels of a row through the pw4w assembly on columns S bytes apart (an
 * instance per S of MCF_WIN_STRIDES), the row's last pixels one by one.
 * Requires dilation 1, in_c a multiple of 4, out_c even and the records.
 */
static int32_t win_pixels(const mcf_conv2d_params *p)
{
    return (p->out_w - 1) * p->stride_w + p->k_w;
}

int32_t mcf_dsp_conv2d_s8_winw_scratch_size(const mcf_conv2d_params *p)
{
    return win_pixels(p) * p->k_h * p->in_c * (int32_t)sizeof(int16_t);
}

#ifdef MCF_DSP_ASM
/* `pixels` pixels of 4 x `groups` int8 values (src word-aligned, contiguous)
 * -> per pixel 8 x `groups` bytes of int16 pairs at dst (SXTB16, then ROR
 * #8, per word), then `gap` bytes on: per 4 words one LDM, 8 SXTB16, one STM. */
void mcf_dsp_widen(const int8_t *src, int32_t pixels, int32_t groups, uint32_t *dst, int32_t gap);
__asm__(MCF_ASM_FUNCTION("mcf_dsp_widen")
        "ldr r12, [sp, #36]\n"       /* gap: the fifth argument, above the 9 registers pushed */
        "1:\n\t"
        "mov lr, r2\n"
        "2:\n\t"
        "ldmia r0!, {r8-r11}\n\t"
        MCF_ASM_WIDEN4
        "subs lr, lr, #1\n\t"
        "bne 2b\n\t"
        "add r3, r3, r12\n\t"
        "subs r1, r1, #1\n\t"
        "bne 1b\n\t"
        "pop {r4-r11, pc}\n\t"
        ".size mcf_dsp_widen, .-mcf_dsp_widen\n\t"
        ".popsection");
#endif

/* Input rows y0 .. y0 + k_h - 1 of the window, x from -pad_left, into win:
 * row by row, its pixels inside the input two words a step, the zero point
 * elsewhere. */
static void win_fill(const mcf_conv2d_params *p, const int8_t *input, int32_t y0, int16_t *win)
{
    const int32_t in_c = p->in_c, n = win_pixels(p), pitch = p->k_h * in_c / 2; /* words per window pixel */
    const int32_t half = in_c / 2, words = in_c / 4;
    const int32_t xa = p->pad_left < n ? p->pad_left : n;
    const int32_t xb = p->pad_left + p->in_w < n ? p->pad_left + p->in_w : n;
    const int16_t zero = (int16_t)(-p->input_offset);
    const uint32_t zero2 = (uint16_t)zero | ((uint32_t)(uint16_t)zero << 16);
    int32_t ky, i, w;
    for (ky = 0; ky < p->k_h; ++ky) {
        const int32_t y = y0 + ky;
        uint32_t *row = (uint32_t *)(void *)win + ky * half;
        const int inside = y >= 0 && y < p->in_h;
        for (i = 0; i < n; ++i) {
            if (!inside || i < xa || i >= xb) {
                for (w = 0; w < half; ++w) {
                    row[i * pitch + w] = zero2;
                }
            }
        }
        if (inside && xa < xb) {
            const int8_t *src = input + (y * p->in_w + xa - p->pad_left) * in_c;
#ifdef MCF_DSP_ASM
            if (words % 4 == 0 && ((uintptr_t)src & 3u) == 0) {
                mcf_dsp_widen(src, xb - xa, words / 4, row + xa * pitch, 4 * (pitch - half));
                continue;
            }
#endif
            for (i = xa; i < xb; ++i, src += in_c) {
                uint32_t *d = row + i * pitch;
                for (w = 0; w + 2 <= words; w += 2, d += 4) {
                    const uint32_t u = mcf_read32(src + 4 * w), v = mcf_read32(src + 4 * w + 4);
                    const uint32_t u0 = (uint32_t)__sxtb16(u), u1 = (uint32_t)mcf_sxtb16_ror8(u);
                    const uint32_t v0 = (uint32_t)__sxtb16(v), v1 = (uint32_t)mcf_sxtb16_ror8(v);
                    d[0] = u0;
                    d[1] = u1;
                    d[2] = v0;
                    d[3] = v1;
                }
                if (w < words) {
                    const uint32_t u = mcf_read32(src + 4 * w);
                    d[0] = (uint32_t)__sxtb16(u);
                    d[1] = (uint32_t)mcf_sxtb16_ror8(u);
                }
            }
        }
    }
}

/* The first output row whose window can live in the input's first bytes (the
 * rows above it dead: the layer's input dies with it), the rows before it
 * with their window in the output's last bytes (below which they end); -1
 * when the layer does not allow that (mcf_dsp_conv2d_s8_winreusew). */
static int32_t win_split(const mcf_conv2d_params *p)
{
    const int32_t bytes = mcf_dsp_conv2d_s8_winw_scratch_size(p), row = p->out_w * p->out_c;
    const int32_t at = (p->out_h * row - bytes) & ~3;
    int32_t oy;
    for (oy = 0; oy < p->out_h; ++oy) {
        if ((int64_t)(oy * p->stride_h - p->pad_top) * p->in_w * p->in_c >= bytes) {
            break;
        }
    }
    return oy < p->out_h && (int64_t)oy * row <= at ? oy : -1;
}

/* Rows before `first` with their window at win_a, the others at win_b. */
static int win_run(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int16_t *win_a,
                   int16_t *win_b, int32_t first)
{
    const int32_t in_c = p->in_c, out_c = p->out_c, pixel = p->k_h * in_c; /* int16 per window pixel */
    matmul m;
    int32_t oy, ox;
#ifdef MCF_DSP_ASM
    void (*fn)(const mcf_pw4_job *, int32_t) = NULL;
    const int32_t stride_bytes = 2 * pixel * p->stride_w;
    const int lo = mcf_dsp_records_lo(p->output_offset);
#define MCF_WIN_PICK(S) \
    if (stride_bytes == (S)) { \
        fn = lo ? mcf_dsp_pw4x2w_s##S##_lo : mcf_dsp_pw4x2w_s##S; \
    }
    MCF_WIN_STRIDES(MCF_WIN_PICK)
#undef MCF_WIN_PICK
#endif
    if (in_c % 4 != 0 || out_c % 2 != 0 || p->dilation_h != 1 || p->dilation_w != 1 ||
        (((uintptr_t)win_a | (uintptr_t)win_b) & 3u) != 0) {
        return MCF_ERR_ARG;
    }
    if (!blocks_matmul_init(&m, p, 1)) {
        return MCF_ERR_ARG;
    }
    for (oy = 0; oy < p->out_h; ++oy) {
        int8_t *out = output + oy * p->out_w * out_c;
        int16_t *win = oy < first ? win_a : win_b;
        win_fill(p, input, oy * p->stride_h - p->pad_top, win);
        ox = 0;
#ifdef MCF_DSP_ASM
        if (fn != NULL) {
            for (; ox + 4 <= p->out_w; ox += 4) {
                fused4_with(&m, (const uint32_t *)(const void *)(win + ox * p->stride_w * pixel), out + ox * out_c,
                            2, fn);
            }
        }
#endif
        for (; ox < p->out_w; ++ox) { /* one column: the run itself (the layout of n = 1) */
            matmul_n(&m, (const uint32_t *)(const void *)(win + ox * p->stride_w * pixel), 1, out + ox * out_c);
        }
    }
    return MCF_OK;
}

int mcf_dsp_conv2d_s8_winw(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch)
{
    if (!conv_args_ok(p, input, output, scratch)) {
        return MCF_ERR_ARG;
    }
    return win_run(p, input, output, (int16_t *)(void *)scratch, (int16_t *)(void *)scratch, 0);
}

int32_t mcf_dsp_conv2d_s8_winreusew_scratch_size(const mcf_conv2d_params *p)
{
    (void)p;
    return 0;
}

/* winw without scratch, for a layer whose input dies with it (the generator
 * checks): the window in the output's last bytes, then in the input's first
 * (win_split). The input is overwritten. */
int mcf_dsp_conv2d_s8_winreusew(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch)
{
    static const int8_t none = 0;
    int32_t first, at;
    (void)scratch;
    if (!conv_args_ok(p, input, output, &none) || (first = win_split(p)) < 0) {
        return MCF_ERR_ARG;
    }
    at = (p->out_h * p->out_w * p->out_c - mcf_dsp_conv2d_s8_winw_scratch_size(p)) & ~3;
    return win_run(p, input, output, (int16_t *)(void *)(output + at), (int16_t *)(void *)(uintptr_t)input, first);
}

/* The k x k variant without scratch (mcf_dsp_conv2d_s8_reuse), for a layer
 * whose input dies with it (the generator checks): its 2 x 4 blocks (as
 * mcf_dsp_conv2d_s8_pw4) take their columns from the output's last bytes
 * while the blocks' outputs end below them, then from the input's first
 * bytes, which no window of the pixels left reads any more. Returns that
 * first pixel on the input's bytes, or -1 when the layer does not allow it. */
static int32_t reuse_split(const mcf_conv2d_params *p)
{
    const int32_t pixels = p->out_h * p->out_w, kp = (p->k_h * p->k_w * p->in_c + 3) / 4 * 4;
    const int32_t bytes = 4 * 2 * kp, at = (pixels * p->out_c - bytes) & ~3;
    int32_t first, y0;
    if (pixels < 4 || at < 4 * p->out_c) {
        return -1;
    }
    first = at / p->out_c / 4 * 4;
    y0 = first / p->out_w * p->stride_h - p->pad_top;
    return (int64_t)y0 * p->in_w * p->in_c >= bytes ? first : -1;
}

int32_t mcf_dsp_conv2d_s8_reuse_scratch_size(const mcf_conv2d_params *p)
{
    (void)p;
    return 0;
}

static int reuse_blocks(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int wide)
{
    static const int8_t none = 0;
    const int32_t pixels = p->out_h * p->out_w, k = p->k_h * p->k_w * p->in_c, kp = (k + 3) / 4 * 4;
    const int32_t first = reuse_split(p), at = (pixels * p->out_c - 4 * 2 * kp) & ~3;
    const int pointwise = inside_1x1(p);
    matmul m;
    int16_t *cols;
    int32_t n;
    if (!conv_args_ok(p, input, output, &none) || first < 0 || (((uintptr_t)input | (uintptr_t)output) & 3u) != 0) {
        return MCF_ERR_ARG;
    }
    if (!blocks_matmul_init(&m, p, wide) || !blocks_of_six(&m)) {
        return MCF_ERR_ARG;
    }
    cols = (int16_t *)(void *)(output + at);
    clear_tail(cols, k, kp, 4);
    for (n = 0; n < first; n += 4) {
        columns_of_4(p, input, n, cols, pointwise);
        matmul_n(&m, (const uint32_t *)(const void *)cols, 4, output + n * p->out_c);
    }
    cols = (int16_t *)(void *)(uintptr_t)input; /* its first bytes: dead (reuse_split) */
    clear_tail(cols, k, kp, 4);
    for (; n + 4 <= pixels; n += 4) {
        columns_of_4(p, input, n, cols, pointwise);
        matmul_n(&m, (const uint32_t *)(const void *)cols, 4, output + n * p->out_c);
    }
    if (wide) {
        wide_rest(&m, p, input, output, cols, n, pointwise, first);
    } else {
        conv_rest(&m, p, input, output, cols, n);
    }
    return MCF_OK;
}

/* reusew: mcf_dsp_conv2d_s8_pw4w's blocks and last block */
MCF_NO_SCRATCH_PAIR(mcf_dsp_conv2d_s8_reuse, reuse_blocks)
#undef MCF_NO_SCRATCH_PAIR
