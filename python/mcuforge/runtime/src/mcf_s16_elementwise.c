/*
 * mcuforge runtime: 16x8 elementwise kernels: ADD, SUB and MUL (with
 * broadcasting), LEAKY_RELU, QUANTIZE between int8 and int16.
 * MUL: TFLM reference_integer_ops::MulElementwise (int16): (a + offset1) *
 * (b + offset2) (below 2^31 with zero points 0), MultiplyByQuantizedMultiplier,
 * + output_offset, clamped.
 *
 * ADD / SUB: TFLM reference_ops::AddGeneralParamScale / SubElementwise and
 * their Broadcast*Slow forms for int16: both inputs offset, shifted left by
 * left_shift (15), scaled by MultiplyByQuantizedMultiplierSmallerThanOneExp,
 * added (subtracted), scaled to the output, offset, clamped to int16.
 * LEAKY_RELU: TFLM QuantizeLeakyRelu<int16_t>: x - zp_in scaled by the
 * identity multiplier (x >= 0) or the alpha multiplier (x < 0), + zp_out,
 * clamped. QUANTIZE: TFLM Requantize: MultiplyByQuantizedMultiplier(x +
 * input_offset) + output_offset, clamped to the output type.
 * Output may equal input (in place): element i is read before it is written.
 */
#include "mcuforge/kernels_s16.h"

static int32_t clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static int32_t scale_down(int32_t x, int32_t multiplier, int32_t shift)
{
    return mcf_rounding_divide_by_pot(mcf_saturating_rounding_doubling_high_mul(x, multiplier), (int)-shift);
}

static int16_t add_sub_one(const mcf_add_sub_s16_params *p, int32_t a, int32_t b, int32_t sign)
{
    const int32_t sa = (int32_t)((uint32_t)(a + p->input1_offset) << p->left_shift);
    const int32_t sb = (int32_t)((uint32_t)(b + p->input2_offset) << p->left_shift);
    const int32_t scaled_a = scale_down(sa, p->input1_multiplier, p->input1_shift);
    const int32_t scaled_b = scale_down(sb, p->input2_multiplier, p->input2_shift);
    const int32_t sum = sign > 0 ? scaled_a + scaled_b : scaled_a - scaled_b;
    const int32_t out = scale_down(sum, p->output_multiplier, p->output_shift) + p->output_offset;
    return (int16_t)clamp(out, p->act_min, p->act_max);
}

static int add_sub(const mcf_add_sub_s16_params *p, const int16_t *input1, const int16_t *input2,
                   int16_t *output, int32_t sign)
{
    int32_t i, i0, i1, i2, i3;

    if (p->size < 0 || p->left_shift < 0 || p->left_shift > 30 ||
        p->input1_shift > 0 || p->input1_shift < -31 || p->input2_shift > 0 || p->input2_shift < -31 ||
        p->output_shift > 0 || p->output_shift < -31 || p->act_min < -32768 || p->act_max > 32767 ||
        p->act_min > p->act_max || input1 == NULL || input2 == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    if (!p->broadcast) {
        for (i = 0; i < p->size; ++i) {
            output[i] = add_sub_one(p, input1[i], input2[i], sign);
        }
        return MCF_OK;
    }
    for (i0 = 0; i0 < p->out_shape[0]; ++i0) {
        for (i1 = 0; i1 < p->out_shape[1]; ++i1) {
            for (i2 = 0; i2 < p->out_shape[2]; ++i2) {
                const int16_t *a = input1 + i0 * p->input1_stride[0] + i1 * p->input1_stride[1] +
                                   i2 * p->input1_stride[2];
                const int16_t *b = input2 + i0 * p->input2_stride[0] + i1 * p->input2_stride[1] +
                                   i2 * p->input2_stride[2];
                for (i3 = 0; i3 < p->out_shape[3]; ++i3) {
                    *output++ = add_sub_one(p, a[i3 * p->input1_stride[3]], b[i3 * p->input2_stride[3]], sign);
                }
            }
        }
    }
    return MCF_OK;
}

int mcf_add_s16(const mcf_add_sub_s16_params *p, const int16_t *input1, const int16_t *input2, int16_t *output)
{
    return add_sub(p, input1, input2, output, 1);
}

int mcf_sub_s16(const mcf_add_sub_s16_params *p, const int16_t *input1, const int16_t *input2, int16_t *output)
{
    return add_sub(p, input1, input2, output, -1);
}

static int16_t mul_one(const mcf_mul_s16_params *p, int32_t a, int32_t b)
{
    const int32_t prod = (a + p->input1_offset) * (b + p->input2_offset);
    const int32_t out = p->output_offset + mcf_multiply_by_quantized_multiplier(prod, p->multiplier, (int)p->shift);
    return (int16_t)clamp(out, p->act_min, p->act_max);
}

int mcf_mul_s16(const mcf_mul_s16_params *p, const int16_t *input1, const int16_t *input2, int16_t *output)
{
    int32_t i, i0, i1, i2, i3;

    if (p->size < 0 || p->shift < -31 || p->shift > 31 || p->act_min < -32768 || p->act_max > 32767 ||
        p->act_min > p->act_max || input1 == NULL || input2 == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    if (!p->broadcast) {
        for (i = 0; i < p->size; ++i) {
            output[i] = mul_one(p, input1[i], input2[i]);
        }
        return MCF_OK;
    }
    for (i0 = 0; i0 < p->out_shape[0]; ++i0) {
        for (i1 = 0; i1 < p->out_shape[1]; ++i1) {
            for (i2 = 0; i2 < p->out_shape[2]; ++i2) {
                const int16_t *a = input1 + i0 * p->input1_stride[0] + i1 * p->input1_stride[1] +
                                   i2 * p->input1_stride[2];
                const int16_t *b = input2 + i0 * p->input2_stride[0] + i1 * p->input2_stride[1] +
                                   i2 * p->input2_stride[2];
                for (i3 = 0; i3 < p->out_shape[3]; ++i3) {
                    *output++ = mul_one(p, a[i3 * p->input1_stride[3]], b[i3 * p->input2_stride[3]]);
                }
            }
        }
    }
    return MCF_OK;
}

int mcf_leaky_relu_s16(const mcf_leaky_relu_s16_params *p, const int16_t *input, int16_t *output)
{
    int32_t i;
    if (p->size < 0 || p->shift_identity < -31 || p->shift_identity > 31 || p->shift_alpha < -31 ||
        p->shift_alpha > 31 || input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    for (i = 0; i < p->size; ++i) {
        const int32_t v = input[i] - p->input_zero_point;
        const int32_t out = v >= 0 ? mcf_multiply_by_quantized_multiplier(v, p->multiplier_identity,
                                                                           (int)p->shift_identity)
                                   : mcf_multiply_by_quantized_multiplier(v, p->multiplier_alpha,
                                                                          (int)p->shift_alpha);
        output[i] = (int16_t)clamp(out + p->output_zero_point, -32768, 32767);
    }
    return MCF_OK;
}

static int requantize_valid(const mcf_requantize_s16_params *p, const void *input, const void *output)
{
    return p->size >= 0 && p->shift >= -31 && p->shift <= 31 && input != NULL && output != NULL;
}

static int32_t requantize_one(const mcf_requantize_s16_params *p, int32_t x)
{
    return mcf_multiply_by_quantized_multiplier(x + p->input_offset, p->multiplier, (int)p->shift) + p->output_offset;
}

int mcf_requantize_s16(const mcf_requantize_s16_params *p, const int16_t *input, int16_t *output)
{
    int32_t i;
    if (!requantize_valid(p, input, output)) {
        return MCF_ERR_ARG;
    }
    for (i = 0; i < p->size; ++i) {
        output[i] = (int16_t)clamp(requantize_one(p, input[i]), -32768, 32767);
    }
    return MCF_OK;
}

int mcf_requantize_s8_s16(const mcf_requantize_s16_params *p, const int8_t *input, int16_t *output)
{
    int32_t i;
    if (!requantize_valid(p, input, output)) {
        return MCF_ERR_ARG;
    }
    for (i = 0; i < p->size; ++i) {
        output[i] = (int16_t)clamp(requantize_one(p, input[i]), -32768, 32767);
    }
    return MCF_OK;
}

int mcf_requantize_s16_s8(const mcf_requantize_s16_params *p, const int16_t *input, int8_t *output)
{
    int32_t i;
    if (!requantize_valid(p, input, output)) {
        return MCF_ERR_ARG;
    }
    for (i = 0; i < p->size; ++i) {
        output[i] = (int8_t)clamp(requantize_one(p, input[i]), -128, 127);
    }
    return MCF_OK;
}
