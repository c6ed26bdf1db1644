/*
 * mcuforge runtime: int8 average and max pooling.
 *
 * TFLM reference_integer_ops::AveragePool and MaxPool
 * (tensorflow/lite/kernels/internal/reference/integer_ops/pooling.h): the
 * window is clipped to the input (padding taps are not counted), the
 * average is the raw sum divided by the tap count rounded half away from
 * zero, then clamped. A window with no tap inside the input is an error for
 * average pooling (as in TFLM; nothing is written) and gives -128, clamped,
 * for max pooling.
 *
 * requantize != 0 (mcuforge extension, for average pools whose output scale
 * or zero point differs from the input's): sum of (x + input_offset),
 * MultiplyByQuantizedMultiplier(sum, multiplier, shift), rounded division
 * by the tap count as above, plus output_offset, clamp.
 */
#include "mcuforge/kernels.h"

static int pool_valid(const mcf_pool_params *p)
{
    return p->in_h > 0 && p->in_w > 0 && p->channels > 0 && p->out_h > 0 && p->out_w > 0 &&
           p->k_h > 0 && p->k_w > 0 && p->stride_h > 0 && p->stride_w > 0 &&
           p->act_min >= -128 && p->act_max <= 127 && p->act_min <= p->act_max;
}

/* Every window has at least one tap inside the input (checked up front so
 * that an invalid call writes nothing). Window starts grow with the output
 * index, so the first window is the one that may end before the input and
 * the last the one that may start after it. */
static int windows_nonempty(const mcf_pool_params *p)
{
    const int32_t last_y = (p->out_h - 1) * p->stride_h - p->pad_top;
    const int32_t last_x = (p->out_w - 1) * p->stride_w - p->pad_left;
    return p->k_h - p->pad_top > 0 && last_y < p->in_h &&
           p->k_w - p->pad_left > 0 && last_x < p->in_w;
}

static int32_t max_i32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

static int32_t min_i32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

int mcf_avg_pool_s8(const mcf_pool_params *p, const int8_t *input, int8_t *output)
{
    const int32_t channels = p->channels, in_w = p->in_w;
    int32_t oy, ox, c, y, x;

    if (!pool_valid(p) || !windows_nonempty(p) || input == NULL || output == NULL ||
        (p->requantize && (p->shift < -31 || p->shift > 31))) {
        return MCF_ERR_ARG;
    }

    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = oy * p->stride_h - p->pad_top;
        const int32_t y_start = max_i32(y0, 0);
        const int32_t y_end = min_i32(y0 + p->k_h, p->in_h);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t x0 = ox * p->stride_w - p->pad_left;
            const int32_t x_start = max_i32(x0, 0);
            const int32_t x_end = min_i32(x0 + p->k_w, in_w);
            const int32_t count = (y_end - y_start) * (x_end - x_start);
            const int32_t half = count / 2;
            int8_t *out = output + (oy * p->out_w + ox) * channels;
            for (c = 0; c < channels; ++c) {
                int32_t acc = 0;
                for (y = y_start; y < y_end; ++y) {
                    const int8_t *in = input + (y * in_w) * channels + c;
                    for (x = x_start; x < x_end; ++x) {
                        acc += in[x * channels];
                    }
                }
                if (p->requantize) {
                    acc += p->input_offset * count;
                    acc = mcf_multiply_by_quantized_multiplier(acc, p->multiplier, (int)p->shift);
                }
                acc = acc > 0 ? (acc + half) / count : (acc - half) / count;
                if (p->requantize) {
                    acc += p->output_offset;
                }
                acc = acc < p->act_min ? p->act_min : acc;
                acc = acc > p->act_max ? p->act_max : acc;
                out[c] = (int8_t)acc;
            }
        }
    }
    return MCF_OK;
}

int mcf_max_pool_s8(const mcf_pool_params *p, const int8_t *input, int8_t *output)
{
    const int32_t channels = p->channels, in_w = p->in_w;
    int32_t oy, ox, c, y, x;

    if (!pool_valid(p) || input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }

    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = oy * p->stride_h - p->pad_top;
        const int32_t y_start = max_i32(y0, 0);
        const int32_t y_end = min_i32(y0 + p->k_h, p->in_h);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t x0 = ox * p->stride_w - p->pad_left;
            const int32_t x_start = max_i32(x0, 0);
            const int32_t x_end = min_i32(x0 + p->k_w, in_w);
            int8_t *out = output + (oy * p->out_w + ox) * channels;
            for (c = 0; c < channels; ++c) {
                int32_t best = -128;
                for (y = y_start; y < y_end; ++y) {
                    const int8_t *in = input + (y * in_w) * channels + c;
                    for (x = x_start; x < x_end; ++x) {
                        best = in[x * channels] > best ? in[x * channels] : best;
                    }
                }
                best = best < p->act_min ? p->act_min : best;
                best = best > p->act_max ? p->act_max : best;
                out[c] = (int8_t)best;
            }
        }
    }
    return MCF_OK;
}
