/*
 * mcuforge runtime: int8 ADD / SUB / MUL / PRELU with 4-D broadcasting, of
 * two activations (mcf_binary_s8) or of an activation and a constant in
 * flash (mcf_binary_const_s8: a per-channel BatchNormalization's MUL and
 * ADD, PRELU's alpha).
 *
 * TFLM reference kernels, element by element:
 *   ADD / SUB  (reference_integer_ops::AddFunc, BroadcastAdd6DSlow / SUB's
 *              twin): each input offset, shifted left by left_shift, scaled
 *              by MultiplyByQuantizedMultiplierSmallerThanOneExp; summed
 *              (or subtracted), scaled to the output, offset, clamped;
 *   MUL        (MulElementwise / BroadcastMul6DSlow): the offset inputs'
 *              product, MultiplyByQuantizedMultiplier by the output
 *              multiplier, offset, clamped;
 *   PRELU      (reference_ops::BroadcastPrelu4DSlow): x = input + offset;
 *              x >= 0: MultiplyByQuantizedMultiplier(x, input1 multiplier)
 *              else    MultiplyByQuantizedMultiplier(x * (alpha + offset),
 *                      output multiplier); plus the output offset, clamped.
 * The walk (and in-place rule) is mcf_binary_apply's (mcf_broadcast.h).
 */
#include "mcf_broadcast.h"

static int32_t scale_down(int32_t x, int32_t multiplier, int32_t shift)
{
    return mcf_rounding_divide_by_pot(mcf_saturating_rounding_doubling_high_mul(x, multiplier), (int)-shift);
}

static int8_t add_sub_one(const void *params, int32_t a, int32_t b)
{
    const mcf_binary_params *p = (const mcf_binary_params *)params;
    const int32_t sa = scale_down((int32_t)((uint32_t)(a + p->input1_offset) << p->left_shift),
                                  p->input1_multiplier, p->input1_shift);
    const int32_t sb = scale_down((int32_t)((uint32_t)(b + p->input2_offset) << p->left_shift),
                                  p->input2_multiplier, p->input2_shift);
    const int32_t sum = p->kind == MCF_BINARY_SUB ? sa - sb : sa + sb;
    const int32_t out = scale_down(sum, p->output_multiplier, p->output_shift) + p->output_offset;
    return (int8_t)mcf_clamp(out, p->act_min, p->act_max);
}

static int8_t mul_one(const void *params, int32_t a, int32_t b)
{
    const mcf_binary_params *p = (const mcf_binary_params *)params;
    const int32_t prod = (a + p->input1_offset) * (b + p->input2_offset);
    const int32_t out = mcf_multiply_by_quantized_multiplier(prod, p->output_multiplier, (int)p->output_shift);
    return (int8_t)mcf_clamp(out + p->output_offset, p->act_min, p->act_max);
}

static int8_t prelu_one(const void *params, int32_t a, int32_t alpha)
{
    const mcf_binary_params *p = (const mcf_binary_params *)params;
    const int32_t x = a + p->input1_offset;
    const int32_t out = x >= 0
        ? mcf_multiply_by_quantized_multiplier(x, p->input1_multiplier, (int)p->input1_shift)
        : mcf_multiply_by_quantized_multiplier(x * (alpha + p->input2_offset), p->output_multiplier,
                                               (int)p->output_shift);
    return (int8_t)mcf_clamp(out + p->output_offset, p->act_min, p->act_max);
}

int mcf_binary_s8(const mcf_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    mcf_binary_fn fn;

    if (p->act_min < -128 || p->act_max > 127 || p->act_min > p->act_max ||
        p->input1_shift < -31 || p->input1_shift > 31 || p->input2_shift < -31 || p->input2_shift > 31 ||
        p->output_shift < -31 || p->output_shift > 31) {
        return MCF_ERR_ARG;
    }
    switch (p->kind) {
    case MCF_BINARY_ADD:
    case MCF_BINARY_SUB:
        if (p->left_shift < 0 || p->left_shift > 30 || p->input1_shift > 0 || p->input2_shift > 0 ||
            p->output_shift > 0) {
            return MCF_ERR_ARG;
        }
        fn = add_sub_one;
        break;
    case MCF_BINARY_MUL:
        fn = mul_one;
        break;
    case MCF_BINARY_PRELU:
        fn = prelu_one;
        break;
    default:
        return MCF_ERR_ARG;
    }
    return mcf_binary_apply(p->size, p->broadcast, p->out_shape, p->input1_stride, p->input2_stride,
                            input1, input2, output, fn, p);
}

int mcf_binary_const_s8(const mcf_binary_params *p, const int8_t *input, int8_t *output)
{
    if (p->constant == NULL) {
        return MCF_ERR_ARG;
    }
    return p->constant_first ? mcf_binary_s8(p, p->constant, input, output)
                             : mcf_binary_s8(p, input, p->constant, output);
}
