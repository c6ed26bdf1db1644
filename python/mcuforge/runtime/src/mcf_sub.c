/*
 * mcuforge runtime: int8 elementwise subtraction with broadcasting.
 *
 * TFLM reference_ops::SubElementwise / BroadcastQuantSubSlow (int8): ADD's
 * arithmetic with the second scaled input subtracted: both inputs offset,
 * shifted left by left_shift (20), scaled by
 * MultiplyByQuantizedMultiplierSmallerThanOneExp, subtracted, scaled to the
 * output, offset and clamped.
 */
#include "mcf_broadcast.h"

static int32_t scale_down(int32_t x, int32_t multiplier, int32_t shift)
{
    return mcf_rounding_divide_by_pot(mcf_saturating_rounding_doubling_high_mul(x, multiplier), (int)-shift);
}

static int8_t sub_one(const void *params, int32_t a, int32_t b)
{
    const mcf_sub_params *p = (const mcf_sub_params *)params;
    const int32_t sa = (int32_t)((uint32_t)(a + p->input1_offset) << p->left_shift);
    const int32_t sb = (int32_t)((uint32_t)(b + p->input2_offset) << p->left_shift);
    const int32_t diff = scale_down(sa, p->input1_multiplier, p->input1_shift) -
                         scale_down(sb, p->input2_multiplier, p->input2_shift);
    const int32_t out = scale_down(diff, p->output_multiplier, p->output_shift) + p->output_offset;
    return (int8_t)mcf_clamp(out, p->act_min, p->act_max);
}

int mcf_sub_s8(const mcf_sub_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    if (p->left_shift < 0 || p->left_shift > 30 ||
        p->input1_shift > 0 || p->input1_shift < -31 || p->input2_shift > 0 || p->input2_shift < -31 ||
        p->output_shift > 0 || p->output_shift < -31 ||
        p->act_min < -128 || p->act_max > 127 || p->act_min > p->act_max) {
        return MCF_ERR_ARG;
    }
    return mcf_binary_apply(p->size, p->broadcast, p->out_shape, p->input1_stride, p->input2_stride,
                            input1, input2, output, sub_one, p);
}
