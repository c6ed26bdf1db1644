/*
 * mcuforge runtime: int8 softmax over the last axis.
 *
 * TFLM int8 -> int8 softmax: reference_ops::Softmax
 * (tensorflow/lite/kernels/internal/reference/softmax.h) with gemmlowp's
 * fixed-point exp and reciprocal (gemmlowp fixedpoint/fixedpoint.h):
 *   diff = x - max(row); skipped (output -128) when diff < diff_min
 *   scaled = SRDHM(diff * 2^input_left_shift, input_multiplier)   Q5.26
 *   e = exp_on_negative_values(scaled)                             Q0.31
 *   sum = sum of RoundingDivideByPOT(e, 12)                        Q12.19
 *   out = RoundingDivideByPOT(SRDHM(1 / sum, e), bits) - 128, clamped
 * Output scale 1/256, zero point -128. Integer arithmetic only.
 *
 * The rows are computed in mcf_softmax.h, which the arm-dsp variant
 * (mcf_dsp_softmax.c) shares: it takes e from the generator's table of the
 * 256 differences instead (codegen/arm_dsp.py softmax_table).
 */
#include "mcf_softmax.h"

int mcf_softmax_s8(const mcf_softmax_params *p, const int8_t *input, int8_t *output)
{
    return softmax(p, input, output, NULL);
}
