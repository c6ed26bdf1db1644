/*
 * mcuforge runtime: int8 elementwise add.
 *
 * TFLM reference_integer_ops::AddElementwise / AddFunc
 * (tensorflow/lite/kernels/internal/reference/integer_ops/add.h), double
 * rounding: both inputs are offset, shifted left by left_shift (20), scaled
 * by MultiplyByQuantizedMultiplierSmallerThanOneExp, summed, scaled again
 * to the output, offset and clamped. All three shifts must be <= 0, as
 * TFLite's QuantizeMultiplierSmallerThanOneExp guarantees.
 */
#include "mcuforge/kernels.h"

/* MultiplyByQuantizedMultiplierSmallerThanOneExp, shift <= 0. */
static int32_t scale_down(int32_t x, int32_t multiplier, int32_t shift)
{
    return mcf_rounding_divide_by_pot(
        mcf_saturating_rounding_doubling_high_mul(x, multiplier), (int)-shift);
}

int mcf_add_s8(const mcf_add_params *p, const int8_t *input1,
               const int8_t *input2, int8_t *output)
{
    const int32_t left_shift = p->left_shift;
    int32_t i;

    if (p->size < 0 || left_shift < 0 || left_shift > 30 ||
        p->input1_shift > 0 || p->input1_shift < -31 ||
        p->input2_shift > 0 || p->input2_shift < -31 ||
        p->output_shift > 0 || p->output_shift < -31 ||
        p->act_min < -128 || p->act_max > 127 || p->act_min > p->act_max ||
        input1 == NULL || input2 == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }

    /* Element i is read before it is written, so output may alias an input. */
    for (i = 0; i < p->size; ++i) {
        const int32_t a = (int32_t)((uint32_t)(p->input1_offset + input1[i]) << left_shift);
        const int32_t b = (int32_t)((uint32_t)(p->input2_offset + input2[i]) << left_shift);
        const int32_t sum = scale_down(a, p->input1_multiplier, p->input1_shift) +
                            scale_down(b, p->input2_multiplier, p->input2_shift);
        int32_t out = scale_down(sum, p->output_multiplier, p->output_shift) + p->output_offset;
        out = out < p->act_min ? p->act_min : out;
        out = out > p->act_max ? p->act_max : out;
        output[i] = (int8_t)out;
    }
    return MCF_OK;
}
