/*
 * mcuforge runtime: 16x8 SOFTMAX.
 *
 * TFLM reference_ops::SoftmaxInt16: per row, exp(x - max) from a 513-entry
 * table over [-10, 0] (the difference rescaled by input_multiplier /
 * input_left_shift so that [-65535, 0] spans it, recentred to int16), the
 * sum's reciprocal from a 513-entry table of 1 / (1 + x), the exponentials
 * times it with a rounding shift; output scale 2^-15 in [0, 32767]. Both
 * tables come with the layer (the generator builds them as TFLM's gen_lut
 * does). The exponentials are kept in the output row meanwhile, as TFLM
 * does; output may equal input.
 */
#include "mcuforge/kernels_s16.h"

static int32_t lut_lookup(int32_t value, const int16_t *lut)
{
    const int32_t index = 256 + (value >> 7);
    const int32_t base = lut[index];
    const int32_t slope = lut[index + 1] - base;
    return (int16_t)(base + ((slope * (value & 0x7F) + 64) >> 7));
}

static int32_t leading_zeros(uint32_t v)
{
    int32_t n = 0;
    if (v == 0) {
        return 32;
    }
    while (!(v & 0x80000000u)) {
        v <<= 1;
        ++n;
    }
    return n;
}

int mcf_softmax_s16(const mcf_softmax_s16_params *p, const int16_t *input, int16_t *output)
{
    int32_t r, c;

    if (p->rows < 0 || p->cols <= 0 || p->input_left_shift < -31 || p->input_left_shift > 31 ||
        p->exp_lut == NULL || p->one_over_one_plus_x_lut == NULL || input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    for (r = 0; r < p->rows; ++r) {
        const int16_t *in = input + r * p->cols;
        int16_t *out = output + r * p->cols;
        int32_t max = -32768, sum = 0, clz, shifted, recip, right_shift;
        int64_t round;
        for (c = 0; c < p->cols; ++c) {
            max = in[c] > max ? in[c] : max;
        }
        for (c = 0; c < p->cols; ++c) {
            int32_t d = mcf_multiply_by_quantized_multiplier(in[c] - max, p->input_multiplier,
                                                            (int)p->input_left_shift) + 32767;
            d = d < -32768 ? -32768 : (d > 32767 ? 32767 : d);
            out[c] = (int16_t)lut_lookup(d, p->exp_lut);
            sum += out[c];
        }
        if (sum <= 0) {
            return MCF_ERR_ARG;
        }
        clz = leading_zeros((uint32_t)sum);
        shifted = (int32_t)((((int64_t)sum << (clz - 1)) + (1 << 13)) >> 14) - ((1 << 15) + (1 << 16));
        shifted = shifted < -32768 ? -32768 : (shifted > 32767 ? 32767 : shifted);
        recip = lut_lookup(shifted, p->one_over_one_plus_x_lut);
        right_shift = 31 - clz;
        round = (int64_t)1 << (right_shift - 1);
        for (c = 0; c < p->cols; ++c) {
            int32_t v = (int32_t)(((int64_t)out[c] * recip + round) >> right_shift);
            out[c] = (int16_t)(v < 0 ? 0 : (v > 32767 ? 32767 : v));
        }
    }
    return MCF_OK;
}
