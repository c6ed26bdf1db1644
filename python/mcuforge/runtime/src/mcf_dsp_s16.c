/*
 * mcuforge runtime, arm-dsp: 16x8 convolution and fully connected layers
 * with SMLAD (two int16 x int16 products per instruction).
 *
 * Same parameter structs and numerics as mcf_s16_conv.c (TFLM's 16x8
 * reference: int64 sums, + int64 bias, the int64 requantization); the
 * generator widens the int8 filter to int16 in flash (mcuforge.codegen.arm_dsp:
 * 2 bytes a weight) so that a 32-bit load brings two weights in the order a
 * 32-bit load of the input brings two channels. Requires in_c (in_features)
 * even. Per output value the products of one filter row (k_w * in_c of them,
 * each below 2^22 in magnitude) are summed by SMLAD in int32 while that is
 * exact (fewer than 512 products: the generator checks), then added to the
 * int64 sum. Plain C with the same results where there is no DSP extension
 * (mcf_acle.h).
 */
#include <string.h>

#include "mcuforge/kernels_s16.h"
#include "mcf_acle.h"
#include "mcf_s16.h"
#include "mcf_window.h"

static inline int32_t load_pair(const int16_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static int16_t finish(int64_t acc, const int64_t *bias, const int32_t *multiplier, const int32_t *shift,
                      int32_t oc, int32_t q, int32_t act_min, int32_t act_max)
{
    int32_t out;
    if (bias != NULL) {
        acc += bias[oc];
    }
    out = mcf_s16_requantize_64(acc, multiplier[q], (int)shift[q]);
    out = out < act_min ? act_min : out;
    out = out > act_max ? act_max : out;
    return (int16_t)out;
}

/* sum of n (even) int16 products, pairs at a time */
static inline int32_t dot_pairs(const int16_t *x, const int16_t *w, int32_t n)
{
    int32_t sum = 0, i;
    for (i = 0; i < n; i += 2) {
        sum = __smlad(load_pair(x + i), load_pair(w + i), sum);
    }
    return sum;
}

int mcf_dsp_conv2d_s16(const mcf_conv2d_s16_params *p, const int16_t *input, int16_t *output, void *scratch)
{
    const int16_t *filter = (const int16_t *)(const void *)p->filter;
    const int32_t in_w = p->in_w, in_c = p->in_c, out_c = p->out_c, k_w = p->k_w;
    const int32_t filter_row = k_w * in_c, filter_size = p->k_h * filter_row;
    int32_t oy, ox, oc, ky, kx;

    (void)scratch;
    if (p->in_h <= 0 || in_w <= 0 || in_c <= 0 || (in_c & 1) || p->out_h <= 0 || p->out_w <= 0 || out_c <= 0 ||
        p->k_h <= 0 || k_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0 || p->dilation_h <= 0 ||
        p->dilation_w <= 0 || p->act_min < -32768 || p->act_max > 32767 || p->act_min > p->act_max ||
        filter == NULL || p->multiplier == NULL || p->shift == NULL || input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = oy * p->stride_h - p->pad_top;
        const int32_t ky_start = mcf_first_tap(y0, p->dilation_h);
        const int32_t ky_end = mcf_end_tap(y0, p->dilation_h, p->in_h, p->k_h);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t x0 = ox * p->stride_w - p->pad_left;
            const int32_t kx_start = mcf_first_tap(x0, p->dilation_w);
            const int32_t kx_end = mcf_end_tap(x0, p->dilation_w, in_w, k_w);
            const int contiguous = p->dilation_w == 1;
            int16_t *out = output + (oy * p->out_w + ox) * out_c;
            for (oc = 0; oc < out_c; ++oc) {
                const int16_t *f = filter + oc * filter_size;
                int64_t acc = 0;
                for (ky = ky_start; ky < ky_end; ++ky) {
                    const int16_t *in_row = input + (y0 + ky * p->dilation_h) * in_w * in_c;
                    const int16_t *f_row = f + ky * filter_row;
                    if (contiguous) {  /* the taps of a kernel row are adjacent pixels: one run */
                        acc += dot_pairs(in_row + (x0 + kx_start) * in_c, f_row + kx_start * in_c,
                                         (kx_end - kx_start) * in_c);
                    } else {
                        for (kx = kx_start; kx < kx_end; ++kx) {
                            acc += dot_pairs(in_row + (x0 + kx * p->dilation_w) * in_c, f_row + kx * in_c, in_c);
                        }
                    }
                }
                out[oc] = finish(acc, p->bias, p->multiplier, p->shift, oc, p->per_channel ? oc : 0,
                                 p->act_min, p->act_max);
            }
        }
    }
    return MCF_OK;
}

int mcf_dsp_fully_connected_s16(const mcf_fully_connected_s16_params *p, const int16_t *input, int16_t *output,
                                void *scratch)
{
    const int16_t *filter = (const int16_t *)(const void *)p->filter;
    const int32_t k = p->in_features, n = p->out_features;
    int32_t r, o, i;

    (void)scratch;
    if (p->rows <= 0 || k <= 0 || (k & 1) || n <= 0 || p->act_min < -32768 || p->act_max > 32767 ||
        p->act_min > p->act_max || filter == NULL || p->multiplier == NULL || p->shift == NULL || input == NULL ||
        output == NULL) {
        return MCF_ERR_ARG;
    }
    for (r = 0; r < p->rows; ++r) {
        const int16_t *in = input + r * k;
        for (o = 0; o < n; ++o) {
            const int16_t *w = filter + o * k;
            int64_t acc = 0;
            for (i = 0; i < k; i += 256) {  /* int32 runs of at most 256 products */
                acc += dot_pairs(in + i, w + i, k - i < 256 ? k - i : 256);
            }
            *output++ = finish(acc, p->bias, p->multiplier, p->shift, o, p->per_channel ? o : 0,
                               p->act_min, p->act_max);
        }
    }
    return MCF_OK;
}
