/*
 * mcuforge runtime: int8 elementwise maximum and minimum with broadcasting.
 *
 * TFLM MAXIMUM / MINIMUM compare the raw int8 values (TFLite gives inputs
 * and output the same quantization): with identity requantization
 * (multiplier 1 << 30, shift 1, zero offsets) this is that. Otherwise each
 * input is first requantized to the output's parameters (as TFLM QUANTIZE
 * does), then compared.
 */
#include "mcf_broadcast.h"

static int32_t to_output(const mcf_maximum_minimum_params *p, int32_t x, int k)
{
    const int32_t offset = k == 0 ? p->input1_offset : p->input2_offset;
    const int32_t multiplier = k == 0 ? p->input1_multiplier : p->input2_multiplier;
    const int32_t shift = k == 0 ? p->input1_shift : p->input2_shift;
    if (multiplier == ((int32_t)1 << 30) && shift == 1 && offset + p->output_offset == 0) {
        return x;
    }
    return mcf_clamp(mcf_multiply_by_quantized_multiplier(x + offset, multiplier, (int)shift) + p->output_offset,
                     -128, 127);
}

static int8_t maximum_one(const void *params, int32_t a, int32_t b)
{
    const mcf_maximum_minimum_params *p = (const mcf_maximum_minimum_params *)params;
    const int32_t x = to_output(p, a, 0), y = to_output(p, b, 1);
    return (int8_t)(x > y ? x : y);
}

static int8_t minimum_one(const void *params, int32_t a, int32_t b)
{
    const mcf_maximum_minimum_params *p = (const mcf_maximum_minimum_params *)params;
    const int32_t x = to_output(p, a, 0), y = to_output(p, b, 1);
    return (int8_t)(x < y ? x : y);
}

static int valid(const mcf_maximum_minimum_params *p)
{
    return p->input1_shift >= -31 && p->input1_shift <= 31 && p->input2_shift >= -31 && p->input2_shift <= 31;
}

int mcf_maximum_s8(const mcf_maximum_minimum_params *p, const int8_t *input1, const int8_t *input2,
                   int8_t *output)
{
    if (!valid(p)) {
        return MCF_ERR_ARG;
    }
    return mcf_binary_apply(p->size, p->broadcast, p->out_shape, p->input1_stride, p->input2_stride,
                            input1, input2, output, maximum_one, p);
}

int mcf_minimum_s8(const mcf_maximum_minimum_params *p, const int8_t *input1, const int8_t *input2,
                   int8_t *output)
{
    if (!valid(p)) {
        return MCF_ERR_ARG;
    }
    return mcf_binary_apply(p->size, p->broadcast, p->out_shape, p->input1_stride, p->input2_stride,
                            input1, input2, output, minimum_one, p);
}
