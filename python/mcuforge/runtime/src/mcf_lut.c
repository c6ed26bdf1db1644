/*
 * mcuforge runtime: an int8 -> int8 elementwise op as a 256-entry table.
 *
 * Every int8 activation function (HARD_SWISH, LOGISTIC, TANH, LEAKY_RELU,
 * a MUL/ADD/SUB with a scalar constant, ...) maps 256 input values to 256
 * outputs; the generator computes the table once with exactly TFLM's
 * integer arithmetic for that op (mcuforge.fixedpoint), so applying it gives
 * TFLM's bytes. table[x + 128] is the output for input x. Output may equal
 * input (in place).
 */
#include "mcuforge/kernels.h"

int mcf_lut_s8(const mcf_lut_params *p, const int8_t *input, int8_t *output)
{
    int32_t i;

    if (p->size < 0 || p->table == NULL || input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    for (i = 0; i < p->size; ++i) {
        output[i] = p->table[input[i] + 128];
    }
    return MCF_OK;
}
