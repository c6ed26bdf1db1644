/*
 * mcuforge runtime: int8 mean over the spatial axes (H, W) of an (H, W, C)
 * tensor.
 *
 * TFLM MEAN for int8 (tensorflow/lite/micro/kernels/reduce_common.cc,
 * EvalIntegerMean -> reference_ops::QuantizedMeanOrSum in
 * tensorflow/lite/kernels/internal/reference/reduce.h, TFLM 2024+): the
 * multiplier/shift of input_scale / output_scale is adapted to include
 * 1 / n, n = in_h * in_w:
 *   s = min(floor(log2(n)), 32, 31 + shift)
 *   multiplier' = (multiplier * 2^s) / n   (64-bit, truncating)
 *   shift' = shift - s
 * then out = clamp(MultiplyByQuantizedMultiplier(sum(x) + input_offset * n,
 * multiplier', shift') + output_offset, -128, 127).
 */
#include "mcuforge/kernels.h"

int mcf_mean_s8(const mcf_mean_params *p, const int8_t *input, int8_t *output)
{
    const int32_t channels = p->channels;
    int32_t n, log2n, s, multiplier, shift, c, i;

    if (p->in_h <= 0 || p->in_w <= 0 || channels <= 0 || p->shift < -31 || p->shift > 31 ||
        input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    n = p->in_h * p->in_w;
    for (log2n = 0; (n >> (log2n + 1)) != 0; ++log2n) {
    }
    s = log2n < 32 ? log2n : 32;
    s = s < 31 + p->shift ? s : 31 + p->shift;
    multiplier = (int32_t)(((int64_t)p->multiplier * ((int64_t)1 << s)) / n);
    shift = p->shift - s;

    for (c = 0; c < channels; ++c) {
        const int8_t *in = input + c;
        int32_t sum = 0, out;
        for (i = 0; i < n; ++i) {
            sum += in[i * channels];
        }
        sum += p->input_offset * n;
        out = mcf_multiply_by_quantized_multiplier(sum, multiplier, (int)shift) + p->output_offset;
        out = out < -128 ? -128 : out;
        out = out > 127 ? 127 : out;
        output[c] = (int8_t)out;
    }
    return MCF_OK;
}
