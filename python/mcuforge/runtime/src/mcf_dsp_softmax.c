/*
 * mcuforge runtime, arm-dsp: int8 softmax, bit-exact with mcf_softmax_s8
 * (TFLM's, mcf_softmax.h): the exp of each difference from the row's
 * maximum is read from the generator's table of the 256 differences
 * (codegen/arm_dsp.py softmax_table: gemmlowp's exp_on_negative_values,
 * 0 below diff_min) instead of computed twice per value.
 */
#include "mcuforge/kernels_arm_dsp.h"
#include "mcf_softmax.h"

int mcf_dsp_softmax_s8(const mcf_softmax_params *p, const int8_t *input, int8_t *output, const int32_t *table)
{
    return table == NULL ? MCF_ERR_ARG : softmax(p, input, output, table);
}
