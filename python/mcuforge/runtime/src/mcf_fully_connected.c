/*
 * mcuforge runtime: int8 fully connected layer.
 *
 * TFLM reference_integer_ops::FullyConnected / FullyConnectedPerChannel
 * (tensorflow/lite/kernels/internal/reference/integer_ops/fully_connected.h)
 * with filter offset 0 (symmetric weights):
 *   acc = sum_k filter[n][k] * (input[k] + input_offset) + bias[n]
 *   out = clamp(MultiplyByQuantizedMultiplier(acc, multiplier, shift)
 *               + output_offset, act_min, act_max)
 */
#include "mcuforge/kernels.h"

int mcf_fully_connected_s8(const mcf_fully_connected_params *p,
                           const int8_t *input, int8_t *output)
{
    const int32_t in_features = p->in_features, out_features = p->out_features;
    const int32_t input_offset = p->input_offset;
    int32_t row, n, k, count;

    if (p->rows <= 0 || in_features <= 0 || out_features <= 0 ||
        p->act_min < -128 || p->act_max > 127 || p->act_min > p->act_max ||
        p->filter == NULL || p->multiplier == NULL || p->shift == NULL ||
        input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    count = p->per_channel ? out_features : 1;
    for (n = 0; n < count; ++n) {
        if (p->shift[n] < -31 || p->shift[n] > 31) {
            return MCF_ERR_ARG;
        }
    }

    for (row = 0; row < p->rows; ++row) {
        const int8_t *in = input + row * in_features;
        int8_t *out = output + row * out_features;
        for (n = 0; n < out_features; ++n) {
            const int8_t *filter = p->filter + n * in_features;
            const int32_t q = p->per_channel ? n : 0;
            int32_t acc = 0;
            for (k = 0; k < in_features; ++k) {
                acc += (int32_t)filter[k] * ((int32_t)in[k] + input_offset);
            }
            if (p->bias != NULL) {
                acc += p->bias[n];
            }
            acc = mcf_multiply_by_quantized_multiplier(acc, p->multiplier[q], (int)p->shift[q]);
            acc += p->output_offset;
            acc = acc < p->act_min ? p->act_min : acc;
            acc = acc > p->act_max ? p->act_max : acc;
            out[n] = (int8_t)acc;
        }
    }
    return MCF_OK;
}
