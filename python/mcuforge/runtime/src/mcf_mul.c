/*
 * mcuforge runtime: int8 elementwise multiplication with broadcasting.
 *
 * TFLM reference_integer_ops::MulElementwise / BroadcastMul6DSlow:
 *   out = clamp(output_offset + MultiplyByQuantizedMultiplier(
 *               (x1 + input1_offset) * (x2 + input2_offset), multiplier, shift))
 * with multiplier/shift = QuantizeMultiplier(s1 * s2 / s_out).
 */
#include "mcf_broadcast.h"

static int8_t mul_one(const void *params, int32_t a, int32_t b)
{
    const mcf_mul_params *p = (const mcf_mul_params *)params;
    const int32_t prod = (a + p->input1_offset) * (b + p->input2_offset);
    const int32_t out = p->output_offset + mcf_multiply_by_quantized_multiplier(prod, p->multiplier, (int)p->shift);
    return (int8_t)mcf_clamp(out, p->act_min, p->act_max);
}

int mcf_mul_s8(const mcf_mul_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    if (p->shift < -31 || p->shift > 31 || p->act_min < -128 || p->act_max > 127 || p->act_min > p->act_max) {
        return MCF_ERR_ARG;
    }
    return mcf_binary_apply(p->size, p->broadcast, p->out_shape, p->input1_stride, p->input2_stride,
                            input1, input2, output, mul_one, p);
}
