/*
 * mcuforge runtime: int8 MEAN and REDUCE_MAX over contiguous axes: the input
 * seen as (outer, reduce, inner), the output as (outer, inner). Covers
 * GlobalAveragePooling1D (a (1, L, C) input: outer 1, reduce L, inner C),
 * the mean over channels (outer H*W, reduce C, inner 1) and
 * GlobalMaxPooling2D.
 *
 * MEAN: TFLM reference_ops::QuantizedMeanOrSum, as mcf_mean_s8 (see there):
 * 1/n folded into multiplier/shift at run time, n = reduce, then
 * MultiplyByQuantizedMultiplier(sum(x) + input_offset * n) + output_offset.
 * MAX: TFLM ReduceGeneric with max over the raw int8 values (TFLM requires
 * the input's and output's scale and zero point to be equal).
 */
#include "mcuforge/kernels.h"

int mcf_reduce_s8(const mcf_reduce_params *p, const int8_t *input, int8_t *output)
{
    const int32_t n = p->reduce_count, inner = p->inner_count;
    int32_t o, r, c, log2n, s, multiplier = 0, shift = 0;

    if (p->outer_count <= 0 || n <= 0 || inner <= 0 || p->shift < -31 || p->shift > 31 || input == NULL ||
        output == NULL || (p->kind != MCF_REDUCE_MEAN && p->kind != MCF_REDUCE_MAX)) {
        return MCF_ERR_ARG;
    }
    if (p->kind == MCF_REDUCE_MEAN) {
        for (log2n = 0; (n >> (log2n + 1)) != 0; ++log2n) {
        }
        s = log2n < 32 ? log2n : 32;
        s = s < 31 + p->shift ? s : 31 + p->shift;
        multiplier = (int32_t)(((int64_t)p->multiplier * ((int64_t)1 << s)) / n);
        shift = p->shift - s;
    }
    for (o = 0; o < p->outer_count; ++o) {
        const int8_t *in = input + o * n * inner;
        for (c = 0; c < inner; ++c) {
            int32_t out;
            if (p->kind == MCF_REDUCE_MAX) {
                int32_t best = -128;
                for (r = 0; r < n; ++r) {
                    best = in[r * inner + c] > best ? in[r * inner + c] : best;
                }
                out = best;
            } else {
                int32_t sum = 0;
                for (r = 0; r < n; ++r) {
                    sum += in[r * inner + c];
                }
                sum += p->input_offset * n;
                out = mcf_multiply_by_quantized_multiplier(sum, multiplier, (int)shift) + p->output_offset;
                out = out < -128 ? -128 : out;
                out = out > 127 ? 127 : out;
            }
            output[o * inner + c] = (int8_t)out;
        }
    }
    return MCF_OK;
}
