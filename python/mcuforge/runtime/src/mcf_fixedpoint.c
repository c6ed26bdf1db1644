/*
 * mcuforge runtime: fixed-point helpers shared by every kernel.
 *
 * Semantics are gemmlowp's (fixedpoint/fixedpoint.h) as used by TFLM's
 * double-rounding MultiplyByQuantizedMultiplier
 * (tensorflow/lite/kernels/internal/common.cc, TFLITE_SINGLE_ROUNDING off).
 * Written so that nothing relies on undefined behaviour: negative values are
 * shifted right with an explicitly arithmetic shift and left shifts that may
 * overflow wrap modulo 2^32, which is what two's complement hardware does
 * for TFLM's `x * (1 << left_shift)`.
 */
#include "mcuforge/kernels.h"

/* Arithmetic right shift, portable (C99 leaves >> of negatives to the
 * implementation); compilers turn this into a single ASR. 0 <= n <= 31. */
static int32_t arithmetic_shift_right(int32_t x, int n)
{
    return x >= 0 ? (int32_t)(x >> n) : (int32_t)~(~x >> n);
}

/*
 * round(a * b / 2^31), ties rounded up (the nudge is 2^30 for a positive
 * product, 1 - 2^30 for a negative one, then C's truncating division),
 * saturating the only overflow case INT32_MIN * INT32_MIN to INT32_MAX.
 */
int32_t mcf_saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;

    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    /* C99 division truncates toward zero, as gemmlowp requires. */
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/*
 * round(x / 2^exponent), ties away from zero; 0 <= exponent <= 31.
 */
int32_t mcf_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return arithmetic_shift_right(x, exponent) + (remainder > threshold ? 1 : 0);
}

/*
 * TFLM MultiplyByQuantizedMultiplier, double rounding:
 *   RoundingDivideByPOT(SRDHM(x * 2^max(shift, 0), multiplier), max(-shift, 0))
 * Valid for -31 <= shift <= 31 (kernels check this before calling).
 */
int32_t mcf_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
    const int left_shift = shift > 0 ? shift : 0;
    const int right_shift = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
    return mcf_rounding_divide_by_pot(
        mcf_saturating_rounding_doubling_high_mul(shifted, multiplier), right_shift);
}
