/*
 * mcuforge runtime: int8 MEAN and REDUCE_MAX over any axes of a 4-D
 * (channels-last) tensor: GlobalAveragePooling1D (axis 1 of (1, 1, L, C)),
 * the mean over channels, GlobalMaxPooling2D, a mean over height and
 * channels. Each output element is computed in one pass over the elements it
 * reduces; no scratch buffer (integer sums do not depend on their order).
 *
 * MEAN: TFLM reference_ops::QuantizedMeanOrSum, as mcf_mean_s8 (see there):
 * 1/n folded into multiplier/shift at run time, n = the reduced element
 * count, then MultiplyByQuantizedMultiplier(sum(x) + input_offset * n) +
 * output_offset, clamped.
 * MAX: TFLM ReduceGeneric with max over the raw int8 values (TFLM requires
 * the input's and output's scale and zero point to be equal).
 */
#include "mcuforge/kernels.h"

int mcf_reduce_s8(const mcf_reduce_params *p, const int8_t *input, int8_t *output)
{
    int32_t span[4], outer[4], stride[4], o[4], r[4], d, n = 1, log2n, s, multiplier = 0, shift = 0;

    if (input == NULL || output == NULL || p->shift < -31 || p->shift > 31 ||
        (p->kind != MCF_REDUCE_MEAN && p->kind != MCF_REDUCE_MAX)) {
        return MCF_ERR_ARG;
    }
    stride[3] = 1;
    for (d = 3; d >= 0; --d) {
        if (p->in_shape[d] <= 0) {
            return MCF_ERR_ARG;
        }
        if (d < 3) {
            stride[d] = stride[d + 1] * p->in_shape[d + 1];
        }
        span[d] = p->reduce[d] ? p->in_shape[d] : 1;   /* walked for each output element */
        outer[d] = p->reduce[d] ? 1 : p->in_shape[d];  /* walked over the output */
        n *= span[d];
    }
    if (p->kind == MCF_REDUCE_MEAN) {
        for (log2n = 0; (n >> (log2n + 1)) != 0; ++log2n) {
        }
        s = log2n < 32 ? log2n : 32;
        s = s < 31 + p->shift ? s : 31 + p->shift;
        multiplier = (int32_t)(((int64_t)p->multiplier * ((int64_t)1 << s)) / n);
        shift = p->shift - s;
    }
    for (o[0] = 0; o[0] < outer[0]; ++o[0])
    for (o[1] = 0; o[1] < outer[1]; ++o[1])
    for (o[2] = 0; o[2] < outer[2]; ++o[2])
    for (o[3] = 0; o[3] < outer[3]; ++o[3]) {
        const int8_t *base = input + o[0] * stride[0] + o[1] * stride[1] + o[2] * stride[2] + o[3];
        int32_t acc = p->kind == MCF_REDUCE_MAX ? -128 : 0, out;
        for (r[0] = 0; r[0] < span[0]; ++r[0])
        for (r[1] = 0; r[1] < span[1]; ++r[1])
        for (r[2] = 0; r[2] < span[2]; ++r[2])
        for (r[3] = 0; r[3] < span[3]; ++r[3]) {
            const int32_t v = base[r[0] * stride[0] + r[1] * stride[1] + r[2] * stride[2] + r[3] * stride[3]];
            acc = p->kind == MCF_REDUCE_MAX ? (v > acc ? v : acc) : acc + v;
        }
        if (p->kind == MCF_REDUCE_MAX) {
            out = acc;
        } else {
            out = mcf_multiply_by_quantized_multiplier(acc + p->input_offset * n, multiplier, (int)shift) +
                  p->output_offset;
            out = out < -128 ? -128 : (out > 127 ? 127 : out);
        }
        *output++ = (int8_t)out;
    }
    return MCF_OK;
}
