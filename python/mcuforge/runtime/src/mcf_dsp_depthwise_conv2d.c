/*
 * mcuforge runtime, arm-dsp kernel set: int8 depthwise convolution with depth
 * multiplier 1, four channels at a time, bit-exact with TFLM's reference
 * kernel, normal and in place.
 *
 * Both go through a ring of input rows in the scratch (the in-place kernel's
 * ring, mcf_depthwise_conv2d.c; mcf_ring.h): 4 channels per pixel, each row
 * padded left and right with the input zero point, so every horizontal tap
 * is a plain load (a padding tap adds filter * 0) and 3x3 windows run with
 * their 9 taps unrolled. In place, output pixel n of channels c..c+3 goes
 * where input pixel n was, once the rows it destroys are in the ring.
 *
 * One 32-bit load brings the 4 channels of a pixel; SXTAB16 adds the input
 * offset while sign-extending (channels 0, 2 and 1, 3); the generator stores
 * the filter as int16 pairs in that order, tap after tap for each group of 4
 * channels, so SMLABB/SMLATT accumulate the 4 channels with no unpacking.
 */
#include "mcuforge/kernels.h"
#include "mcuforge/kernels_arm_dsp.h"
#include "mcf_dsp.h"
#include "mcf_ring.h"
#include "mcf_window.h"

typedef struct {
    int32_t a0, a1, a2, a3; /* channels 0..3 of the group */
} acc4;

/* What the inner loops read, copied from the parameters into a local that
 * the int8 output stores cannot alias (so nothing is reloaded per pixel). */
typedef struct {
    const int32_t *bias, *multiplier, *shift;
    int32_t output_offset, act_min, act_max, offset2;
    int32_t out_w, channels, k_h, k_w, stride_w, dilation_w;
} dw_ctx;

MCF_INLINE void tap(acc4 *a, const int8_t *px, const uint32_t *w, int32_t offset2)
{
    const uint32_t v = mcf_read32(px);
    const int32_t x02 = __sxtab16(offset2, v), x13 = mcf_sxtab16_ror8(offset2, v);
    const int32_t w02 = (int32_t)w[0], w13 = (int32_t)w[1];
    a->a0 = __smlabb(x02, w02, a->a0);
    a->a2 = __smlatt(x02, w02, a->a2);
    a->a1 = __smlabb(x13, w13, a->a1);
    a->a3 = __smlatt(x13, w13, a->a3);
}

MCF_INLINE void save4(const acc4 *a, int32_t *dst)
{
    dst[0] = a->a0;
    dst[1] = a->a1;
    dst[2] = a->a2;
    dst[3] = a->a3;
}

/* Requantize one output row of a group of 4 channels from its accumulators,
 * channel by channel so that bias, multiplier and shift stay in registers. */
MCF_INLINE void requantize_row(const dw_ctx *p, const int32_t *accs, int32_t c, int8_t *out, int fast)
{
    const int32_t o = p->output_offset, lo = p->act_min, hi = p->act_max, n = p->out_w, step = p->channels;
    int32_t j, ox;
    for (j = 0; j < 4; ++j) {
        const int32_t b = p->bias[c + j], m = p->multiplier[c + j], sh = p->shift[c + j];
        const int32_t *a = accs + j;
        int8_t *dst = out + j;
        for (ox = 0; ox < n; ++ox) {
            *dst = mcf_dsp_out(a[4 * ox] + b, m, sh, o, lo, hi, fast);
            dst += step;
        }
    }
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__) && defined(__thumb2__) && defined(__OPTIMIZE__)
#define MCF_DSP_ASM 1
/* The 9 taps of a 3x3 window (rows r0, r1, r2 of the ring, 4 bytes per pixel)
 * in assembly: the compiler spilled most of the accumulators and weights.
 * Same operations as tap() nine times. */
MCF_INLINE void taps_3x3_asm(acc4 *a, const int8_t *r0, const int8_t *r1, const int8_t *r2, const uint32_t *w,
                             int32_t offset2)
{
    int32_t c0 = a->a0, c1 = a->a1, c2 = a->a2, c3 = a->a3;
    uint32_t x, y, p, q;
#define MCF_TAP(row, at)                                     \
        "ldr %[x], [%[" row "], #" at "]\n\t"                \
        "sxtab16 %[y], %[o], %[x], ror #8\n\t"               \
        "sxtab16 %[x], %[o], %[x]\n\t"                       \
        "ldrd %[p], %[q], [%[w]], #8\n\t"                    \
        "smlabb %[c0], %[x], %[p], %[c0]\n\t"                \
        "smlatt %[c2], %[x], %[p], %[c2]\n\t"                \
        "smlabb %[c1], %[y], %[q], %[c1]\n\t"                \
        "smlatt %[c3], %[y], %[q], %[c3]\n\t"
    __asm__ volatile(MCF_TAP("r0", "0") MCF_TAP("r0", "4") MCF_TAP("r0", "8")
                     MCF_TAP("r1", "0") MCF_TAP("r1", "4") MCF_TAP("r1", "8")
                     MCF_TAP("r2", "0") MCF_TAP("r2", "4") MCF_TAP("r2", "8")
                     : [c0] "+r"(c0), [c1] "+r"(c1), [c2] "+r"(c2), [c3] "+r"(c3), [w] "+r"(w), [x] "=&r"(x),
                       [y] "=&r"(y), [p] "=&r"(p), [q] "=&r"(q)
                     : [r0] "r"(r0), [r1] "r"(r1), [r2] "r"(r2), [o] "r"(offset2)
                     : "memory");
#undef MCF_TAP
    a->a0 = c0;
    a->a1 = c1;
    a->a2 = c2;
    a->a3 = c3;
}
#endif

static int params_valid(const mcf_depthwise_conv2d_params *p)
{
    int32_t i;
    if (p->in_h <= 0 || p->in_w <= 0 || p->in_c <= 0 || (p->in_c & 3) != 0 || p->out_h <= 0 || p->out_w <= 0 ||
        p->depth_multiplier != 1 || p->out_c != p->in_c || p->k_h <= 0 || p->k_w <= 0 || p->stride_h <= 0 ||
        p->stride_w <= 0 || p->dilation_h <= 0 || p->dilation_w <= 0 || p->act_min < -128 || p->act_max > 127 || p->act_min > p->act_max || p->filter == NULL ||
        p->bias == NULL || p->multiplier == NULL || p->shift == NULL) {
        return 0;
    }
    for (i = 0; i < p->out_c; ++i) {
        if (p->shift[i] < -31 || p->shift[i] > 31) {
            return 0;
        }
    }
    return 1;
}

/* Pixels of a padded ring row: pad_left + in_w + what the rightmost window needs. */
static int32_t ring_width(const mcf_depthwise_conv2d_params *p)
{
    const int32_t reach = (p->out_w - 1) * p->stride_w + (p->k_w - 1) * p->dilation_w + 1;
    const int32_t width = p->pad_left + p->in_w;
    return reach > width ? reach : width;
}

static int32_t ring_rows(const mcf_depthwise_conv2d_params *p, int32_t in_place)
{
    const int32_t rows = mcf_ring_rows_of(p, in_place);
    return rows > 0 ? rows : 1;
}

static int32_t scratch_size(const mcf_depthwise_conv2d_params *p, int32_t in_place)
{
    if (!params_valid(p) || (in_place && (int64_t)p->out_h * p->out_w > (int64_t)p->in_h * p->in_w)) {
        return MCF_ERR_ARG;
    }
    return ring_rows(p, in_place) * ring_width(p) * 4 + p->out_w * 4 * (int32_t)sizeof(int32_t);
}

int32_t mcf_dsp_depthwise_conv2d_s8_scratch_size(const mcf_depthwise_conv2d_params *p)
{
    return scratch_size(p, 0);
}

int32_t mcf_dsp_depthwise_conv2d_s8_inplace_scratch_size(const mcf_depthwise_conv2d_params *p)
{
    return scratch_size(p, 1);
}

/* One output row of one group of 4 channels, from ring rows. */
MCF_INLINE void output_row(const dw_ctx *p,
                                                             const int8_t *ring, int32_t row_bytes,
                                                             int32_t first_slot, int32_t slot_step, int32_t rows,
                                                             int32_t ky_start, int32_t ky_end, const uint32_t *w,
                                                             int32_t *accs)
{
    const int32_t offset2 = p->offset2;
    const int32_t step = p->stride_w * 4;
    int32_t ox;
    if (p->k_w == 3 && p->dilation_w == 1 && ky_start == 0 && ky_end == 3 && p->k_h == 3) {
        int32_t s1 = first_slot + slot_step, s2;
        const int8_t *r0, *r1, *r2;
        s1 = s1 >= rows ? s1 - rows : s1;
        s2 = s1 + slot_step;
        s2 = s2 >= rows ? s2 - rows : s2;
        r0 = ring + first_slot * row_bytes;
        r1 = ring + s1 * row_bytes;
        r2 = ring + s2 * row_bytes;
        for (ox = 0; ox < p->out_w; ++ox) {
            acc4 a = {0, 0, 0, 0};
#ifdef MCF_DSP_ASM
            taps_3x3_asm(&a, r0, r1, r2, w, offset2);
#else
            tap(&a, r0, w, offset2);
            tap(&a, r0 + 4, w + 2, offset2);
            tap(&a, r0 + 8, w + 4, offset2);
            tap(&a, r1, w + 6, offset2);
            tap(&a, r1 + 4, w + 8, offset2);
            tap(&a, r1 + 8, w + 10, offset2);
            tap(&a, r2, w + 12, offset2);
            tap(&a, r2 + 4, w + 14, offset2);
            tap(&a, r2 + 8, w + 16, offset2);
#endif
            save4(&a, accs);
            r0 += step;
            r1 += step;
            r2 += step;
            accs += 4;
        }
        return;
    }
    for (ox = 0; ox < p->out_w; ++ox) {
        const int32_t tap_step = p->dilation_w * 4;
        int32_t slot = first_slot, ky, kx;
        acc4 a = {0, 0, 0, 0};
        for (ky = ky_start; ky < ky_end; ++ky) {
            const int8_t *px = ring + slot * row_bytes + ox * step;
            const uint32_t *wk = w + ky * p->k_w * 2;
            for (kx = 0; kx < p->k_w; ++kx) {
                tap(&a, px, wk, offset2);
                px += tap_step;
                wk += 2;
            }
            slot += slot_step;
            slot = slot >= rows ? slot - rows : slot;
        }
        save4(&a, accs);
        accs += 4;
    }
}

MCF_INLINE void run(const mcf_depthwise_conv2d_params *p, const int8_t *input,
                                                      int8_t *output, int8_t *ring, int32_t in_place, int fast)
{
    const int32_t in_w = p->in_w, channels = p->in_c, taps = p->k_h * p->k_w;
    const int32_t rows = ring_rows(p, in_place), width = ring_width(p), row_bytes = width * 4;
    const int32_t last = mcf_ring_last(p), slot_step = p->dilation_h % rows;
    int32_t *accs = (int32_t *)(void *)(ring + rows * row_bytes); /* one output row x 4 channels */
    const int32_t copy_start = p->pad_left > 0 ? p->pad_left : 0;
    const int32_t copy_end = p->pad_left + in_w < width ? p->pad_left + in_w : width;
    const uint32_t zero = 0x01010101u * (uint8_t)(-p->input_offset);
    const uint32_t *filter = (const uint32_t *)(const void *)p->filter;
    const dw_ctx ctx = {p->bias, p->multiplier, p->shift, p->output_offset, p->act_min, p->act_max,
                        (int32_t)(((uint32_t)p->input_offset & 0xFFFFu) | ((uint32_t)p->input_offset << 16)),
                        p->out_w, p->in_c, p->k_h, p->k_w, p->stride_w, p->dilation_w};
    int32_t c;
    for (c = 0; c < channels; c += 4) {
        const uint32_t *w = filter + (c / 4) * taps * 2;
        int32_t copied = -1; /* rows <= copied were copied or are never needed */
        int32_t oy, r, x;
        for (r = 0; r < rows; ++r) { /* the padding columns, never overwritten */
            int8_t *row = ring + r * row_bytes;
            for (x = 0; x < p->pad_left; ++x) {
                mcf_write32(row + 4 * x, zero);
            }
            for (x = p->pad_left + in_w; x < width; ++x) {
                mcf_write32(row + 4 * x, zero);
            }
        }
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_top;
            const int32_t ky_start = mcf_first_tap(y0, p->dilation_h);
            const int32_t ky_end = mcf_end_tap(y0, p->dilation_h, p->in_h, p->k_h);
            int32_t lo, hi;
            mcf_ring_bounds_of(p, last, oy, in_place, &lo, &hi);
            for (r = copied + 1 > lo ? copied + 1 : lo; r <= hi; ++r) {
                /* ring column j holds input column j - pad_left (a patch may start inside the input:
                 * negative padding) */
                const int8_t *src = input + (r * in_w + copy_start - p->pad_left) * channels + c;
                int8_t *dst = ring + (r % rows) * row_bytes + copy_start * 4;
                for (x = 0; x < copy_end - copy_start; ++x) {
                    mcf_write32(dst + 4 * x, mcf_read32(src + x * channels));
                }
            }
            copied = hi > copied ? hi : copied;
            if (ky_start < ky_end) {
                output_row(&ctx, ring, row_bytes, (y0 + ky_start * p->dilation_h) % rows, slot_step, rows, ky_start,
                           ky_end, w, accs);
            } else { /* the window lies in the padding: bias only */
                for (x = 0; x < 4 * p->out_w; ++x) {
                    accs[x] = 0;
                }
            }
            requantize_row(&ctx, accs, c, output + oy * p->out_w * channels + c, fast);
        }
    }
}

static int dispatch(const mcf_depthwise_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch,
                    int32_t in_place)
{
    if (scratch_size(p, in_place) < 0 || input == NULL || output == NULL || scratch == NULL) {
        return MCF_ERR_ARG;
    }
    switch (mcf_dsp_mode(p->per_channel, p->act_min, p->act_max)) {
    case MCF_DSP_FAST_SAT:
        run(p, input, output, scratch, in_place, MCF_DSP_FAST_SAT);
        break;
    case MCF_DSP_FAST:
        run(p, input, output, scratch, in_place, MCF_DSP_FAST);
        break;
    default:
        run(p, input, output, scratch, in_place, MCF_DSP_GENERAL);
        break;
    }
    return MCF_OK;
}

int mcf_dsp_depthwise_conv2d_s8(const mcf_depthwise_conv2d_params *p, const int8_t *input, int8_t *output,
                                int8_t *scratch)
{
    return dispatch(p, input, output, scratch, 0);
}

int mcf_dsp_depthwise_conv2d_s8_inplace(const mcf_depthwise_conv2d_params *p, int8_t *buffer, int8_t *scratch)
{
    return dispatch(p, buffer, buffer, scratch, 1);
}
