/*
 * mcuforge runtime, arm-dsp: int8 average pooling, bit-exact with
 * mcf_avg_pool_s8 (TFLM reference_integer_ops::AveragePool; mcf_pool.c for
 * the rules and the requantize extension).
 *
 * Four channels at a time: each tap is one 32-bit load of the 4 channels and
 * two SXTAB16, which add channels 0 and 2, and 1 and 3, into the int16
 * halves of two accumulators. A window of at most 255 taps keeps every sum
 * within int16 (255 * 128 < 2^15): the generator offers the kernel only for
 * such windows and a channel count that is a multiple of 4 (the kernel
 * returns MCF_ERR_ARG otherwise). Per tap and 4 channels about 5 cycles on
 * Cortex-M4 against some 40 for the portable kernel's four scalar sums.
 */
#include "mcf_dsp.h"

#define MCF_DSP_POOL_MAX_TAPS 255

/* The rounded average of channel sum `acc` over `count` taps, then the
 * requantization when the layer asks for it and the clamp (mcf_avg_pool_s8). */
MCF_INLINE int8_t pool_out(const mcf_pool_params *p, int32_t acc, int32_t count)
{
    const int32_t half = count / 2;
    if (p->requantize) {
        acc = mcf_dsp_requantize(acc + p->input_offset * count, p->multiplier, p->shift);
    }
    acc = acc > 0 ? (acc + half) / count : (acc - half) / count;
    if (p->requantize) {
        acc += p->output_offset;
    }
    return mcf_dsp_clamp(acc, p->act_min, p->act_max);
}

static int pool_args_ok(const mcf_pool_params *p, const int8_t *input, const int8_t *output)
{
    const int32_t last_y = (p->out_h - 1) * p->stride_h - p->pad_top;
    const int32_t last_x = (p->out_w - 1) * p->stride_w - p->pad_left;
    return p->in_h > 0 && p->in_w > 0 && p->channels > 0 && (p->channels & 3) == 0 && p->out_h > 0 &&
           p->out_w > 0 && p->k_h > 0 && p->k_w > 0 && p->k_h * p->k_w <= MCF_DSP_POOL_MAX_TAPS &&
           p->stride_h > 0 && p->stride_w > 0 && p->act_min >= -128 && p->act_max <= 127 &&
           p->act_min <= p->act_max && (!p->requantize || (p->shift >= -31 && p->shift <= 31)) &&
           p->k_h - p->pad_top > 0 && last_y < p->in_h && p->k_w - p->pad_left > 0 && last_x < p->in_w &&
           input != NULL && output != NULL;
}

/* n taps from `in` on, `step` bytes apart, onto the channel pairs' sums:
 * four loads back to back per step. */
MCF_INLINE void sum_run(const int8_t *in, int32_t n, int32_t step, int32_t *s02, int32_t *s13)
{
    int32_t a = *s02, b = *s13;
    for (; n >= 4; n -= 4, in += 4 * step) {
        const uint32_t v0 = mcf_read32(in), v1 = mcf_read32(in + step);
        const uint32_t v2 = mcf_read32(in + 2 * step), v3 = mcf_read32(in + 3 * step);
        a = __sxtab16(a, v0);
        b = mcf_sxtab16_ror8(b, v0);
        a = __sxtab16(a, v1);
        b = mcf_sxtab16_ror8(b, v1);
        a = __sxtab16(a, v2);
        b = mcf_sxtab16_ror8(b, v2);
        a = __sxtab16(a, v3);
        b = mcf_sxtab16_ror8(b, v3);
    }
    for (; n > 0; --n, in += step) {
        const uint32_t v = mcf_read32(in);
        a = __sxtab16(a, v);
        b = mcf_sxtab16_ror8(b, v);
    }
    *s02 = a;
    *s13 = b;
}

int32_t mcf_dsp_avg_pool_s8_scratch_size(const mcf_pool_params *p)
{
    (void)p;
    return 0;
}

int mcf_dsp_avg_pool_s8(const mcf_pool_params *p, const int8_t *input, int8_t *output, int8_t *scratch)
{
    const int32_t channels = p->channels, in_w = p->in_w, row = in_w * channels;
    int32_t oy, ox, c, y;
    (void)scratch;
    if (!pool_args_ok(p, input, output)) {
        return MCF_ERR_ARG;
    }
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = oy * p->stride_h - p->pad_top;
        const int32_t y_start = y0 > 0 ? y0 : 0, y_end = y0 + p->k_h < p->in_h ? y0 + p->k_h : p->in_h;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t x0 = ox * p->stride_w - p->pad_left;
            const int32_t x_start = x0 > 0 ? x0 : 0, x_end = x0 + p->k_w < in_w ? x0 + p->k_w : in_w;
            const int32_t count = (y_end - y_start) * (x_end - x_start);
            int8_t *out = output + (oy * p->out_w + ox) * channels;
            for (c = 0; c < channels; c += 4) {
                int32_t s02 = 0, s13 = 0;
                if (x_start == 0 && x_end == in_w) { /* whole rows: one run of pixels */
                    sum_run(input + y_start * row + c, (y_end - y_start) * in_w, channels, &s02, &s13);
                } else {
                    for (y = y_start; y < y_end; ++y) {
                        sum_run(input + y * row + x_start * channels + c, x_end - x_start, channels, &s02, &s13);
                    }
                }
                out[c] = pool_out(p, (int16_t)s02, count);
                out[c + 1] = pool_out(p, (int16_t)s13, count);
                out[c + 2] = pool_out(p, (int16_t)((uint32_t)s02 >> 16), count);
                out[c + 3] = pool_out(p, (int16_t)((uint32_t)s13 >> 16), count);
            }
        }
    }
    return MCF_OK;
}
