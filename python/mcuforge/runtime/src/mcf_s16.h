/*
 * mcuforge runtime, private: the 16x8 requantization shared by the portable
 * and arm-dsp 16x8 kernels. Not part of the public API.
 */
#ifndef MCF_S16_H
#define MCF_S16_H

#include <stdint.h>

/* TFLM MultiplyByQuantizedMultiplier(int64_t x, int32_t multiplier, int shift):
 * the Q31 multiplier reduced to Q15, rounded; then one rounding shift by
 * 15 - shift (>> of a negative int64 is arithmetic on every compiler mcuforge
 * supports, as TFLM assumes). |x| < 2^47, multiplier >= 0, -31 <= shift <= 7. */
static inline int32_t mcf_s16_requantize_64(int64_t x, int32_t multiplier, int shift)
{
    const int32_t reduced = multiplier < 0x7FFF0000 ? (multiplier + (1 << 15)) >> 16 : 0x7FFF;
    const int total_shift = 15 - shift;
    const int64_t rounded = x * (int64_t)reduced + ((int64_t)1 << (total_shift - 1));
    return (int32_t)(rounded >> total_shift);
}

#endif /* MCF_S16_H */
