/*
 * mcuforge runtime, private: TFLM's int8 softmax (see mcf_softmax.c), every
 * row of it, shared by the portable kernel and the arm-dsp one that reads
 * its exps from a table (mcf_dsp_softmax.c).
 */
#ifndef MCF_SOFTMAX_H
#define MCF_SOFTMAX_H
#include "mcuforge/kernels.h"

#define SRDHM mcf_saturating_rounding_doubling_high_mul
#define RDBP mcf_rounding_divide_by_pot

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0. */
static int32_t saturating_shift_left(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* Wrapping int32 addition and subtraction (gemmlowp's raw + and -). */
static int32_t add_wrap(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static int32_t sub_wrap(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a - (uint32_t)b);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8. */
static int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a)
{
    const int32_t constant_term = 1895147668;     /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;  /* 1/3 */
    const int32_t x = add_wrap(a, (int32_t)1 << 28);
    const int32_t x2 = SRDHM(x, x);
    const int32_t x3 = SRDHM(x2, x);
    const int32_t x4 = SRDHM(x2, x2);
    const int32_t x4_over_4 = RDBP(x4, 2);
    const int32_t poly = RDBP(add_wrap(SRDHM(add_wrap(x4_over_4, x3), constant_1_over_3), x2), 1);
    return add_wrap(constant_term, SRDHM(constant_term, add_wrap(x, poly)));
}

/* exp(a) for a <= 0; a in Q5.26, result in Q0.31. */
static int32_t exp_on_negative_values(int32_t a)
{
    static const int32_t multipliers[7] = {
        1672461947, /* exp(-1/4) */
        1302514674, /* exp(-1/2) */
        790015084,  /* exp(-1) */
        290630308,  /* exp(-2) */
        39332535,   /* exp(-4) */
        720401,     /* exp(-8) */
        242,        /* exp(-16) */
    };
    const int fractional_bits = 26;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t a_mod_quarter_minus_one_quarter = sub_wrap(a & (one_quarter - 1), one_quarter);
    const int32_t remainder = sub_wrap(a_mod_quarter_minus_one_quarter, a);
    int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_shift_left(a_mod_quarter_minus_one_quarter, 5));
    int i;

    for (i = 0; i < 7; ++i) {
        /* bit for exp(-2^(i - 2)) */
        if (remainder & ((int32_t)1 << (fractional_bits - 2 + i))) {
            result = SRDHM(result, multipliers[i]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out: Newton-Raphson. */
static int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    const int32_t constant_48_over_17 = 1515870810;     /* Q2.29 */
    const int32_t constant_neg_32_over_17 = -1010580540; /* Q2.29 */
    const int32_t one_q2 = (int32_t)1 << 29;
    /* RoundingHalfSum(a, 1.0) */
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = add_wrap(constant_48_over_17, SRDHM(half_denominator, constant_neg_32_over_17));
    int i;

    for (i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = SRDHM(half_denominator, x);
        const int32_t one_minus = sub_wrap(one_q2, half_denominator_times_x);
        x = add_wrap(x, saturating_shift_left(SRDHM(x, one_minus), 2));
    }
    return saturating_shift_left(x, 1);
}

static int count_leading_zeros(uint32_t x)
{
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while ((x & 0x80000000u) == 0) {
        x <<= 1;
        ++n;
    }
    return n;
}

/* RoundingDivideByPOT that also accepts exponents above 31 (where TFLM
 * stops with an error): the nonnegative Q0.31 product rounds to 0 there. */
static int32_t rounding_divide_wide(int32_t x, int exponent)
{
    if (exponent > 31) {
        return 0;
    }
    return RDBP(x, exponent);
}

/* exp(diff) for a difference diff <= 0 from the row's maximum, Q0.31; 0
 * below diff_min, where TFLM skips the value: it then adds nothing to the
 * sum, and its output SRDHM(reciprocal, 0) >> exponent - 128 is -128, what
 * TFLM writes there. */
static int32_t exp_of(const mcf_softmax_params *p, int32_t diff)
{
    if (diff < p->diff_min) {
        return 0;
    }
    return exp_on_negative_values(SRDHM((int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier));
}

/* Every row, exp(diff) from table[-diff] (the arm-dsp variant's: the
 * generator tabulates exp_of for the 256 differences, so no exp is computed
 * at run time) or, without a table, computed twice per value as TFLM does. */
static int softmax(const mcf_softmax_params *p, const int8_t *input, int8_t *output, const int32_t *table)
{
    const int32_t cols = p->cols;
    int32_t row, c;

    if (p->rows < 0 || cols <= 0 || p->input_left_shift < 0 || p->input_left_shift > 31 || p->diff_min > 0 ||
        input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }

    for (row = 0; row < p->rows; ++row) {
        const int8_t *in = input + row * cols;
        int8_t *out = output + row * cols;
        int32_t max_in_row = -128, sum_of_exps = 0, reciprocal, shifted_sum_minus_one;
        int headroom_plus_one, num_bits_over_unit, exponent;

        for (c = 0; c < cols; ++c) {
            max_in_row = in[c] > max_in_row ? in[c] : max_in_row;
        }
        for (c = 0; c < cols; ++c) {
            const int32_t diff = in[c] - max_in_row;
            sum_of_exps = add_wrap(sum_of_exps, RDBP(table != NULL ? table[-diff] : exp_of(p, diff), 12));
        }

        /* GetReciprocal(sum_of_exps, 12) */
        headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
        num_bits_over_unit = 12 - headroom_plus_one;
        shifted_sum_minus_one =
            (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31));
        reciprocal = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
        exponent = num_bits_over_unit + 31 - 8;

        for (c = 0; c < cols; ++c) {
            const int32_t diff = in[c] - max_in_row;
            const int32_t e = table != NULL ? table[-diff] : exp_of(p, diff);
            int32_t value = rounding_divide_wide(SRDHM(reciprocal, e), exponent) - 128;
            value = value > 127 ? 127 : value;
            out[c] = (int8_t)(value < -128 ? -128 : value);
        }
    }
    return MCF_OK;
}

#endif /* MCF_SOFTMAX_H */
