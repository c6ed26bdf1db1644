/*
 * mcuforge runtime, private: what the arm-dsp kernels share, the intrinsics
 * (mcf_acle.h) and TFLM's requantization written for the DSP instructions.
 */
#ifndef MCF_DSP_H
#define MCF_DSP_H

#include <stdint.h>

#include "mcf_acle.h"
#include "mcuforge/kernels_arm_dsp.h"

/* Kernel helpers the compiler must inline, so that a constant argument
 * (e.g. the requantization mode) specializes them. */
#if defined(__GNUC__)
#define MCF_INLINE static inline __attribute__((always_inline))
#else
#define MCF_INLINE static inline
#endif

static inline int32_t mcf_dsp_asr(int32_t x, int32_t n)
{
    return x >= 0 ? (int32_t)(x >> n) : (int32_t)~(~x >> n);
}

/*
 * TFLM MultiplyByQuantizedMultiplier (double rounding), bit for bit, for a
 * multiplier >= 0 (quantize_multiplier never gives a negative one):
 * SaturatingRoundingDoublingHighMul(a, m) = floor((a * m + 2^30) / 2^31)
 * equals gemmlowp's truncating form for every a when m >= 0 (for a * m < 0,
 * trunc((a*m + 1 - 2^30) / 2^31) = -floor((-a*m + 2^30 - 1) / 2^31)
 * = floor((a*m + 2^30) / 2^31)), and cannot saturate. One SMLAL.
 * Then RoundingDivideByPOT: round half away from zero.
 */
static inline int32_t mcf_dsp_requantize(int32_t acc, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int64_t prod = (int64_t)(int32_t)((uint32_t)acc << left) * multiplier + ((int64_t)1 << 30);
    const int32_t x = (int32_t)(prod >= 0 ? prod >> 31 : ~(~prod >> 31));
    const int32_t mask = (int32_t)((1u << right) - 1u);
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return mcf_dsp_asr(x, right) + ((x & mask) > threshold ? 1 : 0);
}

/*
 * The same, in 5 instructions, for what the generator proves of a layer
 * (per_channel == MCF_DSP_FAST_REQUANT): |acc| < 2^30 and every shift in
 * [-31, -1]. Then SRDHM(acc, m) = floor((2 acc m + 2^31) / 2^32) = SMMULR(2 acc, m)
 * (2 acc does not overflow), |x| < 2^30, and RoundingDivideByPOT(x, e)
 * = (x + 2^(e-1) - (x < 0)) >> e with no overflow.
 */
static inline int32_t mcf_dsp_requantize_fast(int32_t acc, int32_t multiplier, int32_t shift)
{
    const int32_t x = mcf_smmulr(acc * 2, multiplier);
    const int32_t e = -shift;
    return mcf_dsp_asr(x + (int32_t)((1u << e) >> 1) + mcf_dsp_asr(x, 31), e);
}

/* output offset + clamp, as every TFLM int8 kernel ends. */
static inline int8_t mcf_dsp_clamp(int32_t v, int32_t act_min, int32_t act_max)
{
    v = v < act_min ? act_min : v;
    v = v > act_max ? act_max : v;
    return (int8_t)v;
}

static inline int8_t mcf_dsp_output(int32_t acc, int32_t multiplier, int32_t shift, int32_t output_offset,
                                    int32_t act_min, int32_t act_max)
{
    return mcf_dsp_clamp(mcf_dsp_requantize(acc, multiplier, shift) + output_offset, act_min, act_max);
}

static inline int8_t mcf_dsp_output_fast(int32_t acc, int32_t multiplier, int32_t shift, int32_t output_offset,
                                         int32_t act_min, int32_t act_max)
{
    return mcf_dsp_clamp(mcf_dsp_requantize_fast(acc, multiplier, shift) + output_offset, act_min, act_max);
}

/* Requantization modes of a kernel copy: MCF_DSP_GENERAL, MCF_DSP_FAST (the
 * generator's proof above), MCF_DSP_FAST_SAT (also act_min = -128 and
 * act_max = 127: the clamp is one SSAT). */
#define MCF_DSP_GENERAL 0
#define MCF_DSP_FAST 1
#define MCF_DSP_FAST_SAT 2

MCF_INLINE int8_t mcf_dsp_out(int32_t acc, int32_t multiplier, int32_t shift, int32_t output_offset,
                              int32_t act_min, int32_t act_max, int mode)
{
    if (mode == MCF_DSP_FAST_SAT) {
        return (int8_t)__ssat(mcf_dsp_requantize_fast(acc, multiplier, shift) + output_offset, 8);
    }
    if (mode == MCF_DSP_FAST) {
        return mcf_dsp_output_fast(acc, multiplier, shift, output_offset, act_min, act_max);
    }
    return mcf_dsp_output(acc, multiplier, shift, output_offset, act_min, act_max);
}

/*
 * mcf_dsp_out in mode MCF_DSP_FAST_SAT, from the 1x1 kernel's record rq of
 * a channel with shift in [-22, -1] (kernels_arm_dsp.h: m, e = -shift,
 * r = output_offset * 2^e + 2^(e-1)), as its assembly computes it:
 * SMMLAR(2 acc, m, r - (acc < 0)) = x + r - (x < 0) with x = SMMULR(2 acc, m),
 * then >> e and SSAT. The sign is taken from acc: it differs from x's only
 * when acc < 0 and x = 0, and then (r - 1) >> e = r >> e = output_offset
 * (e >= 1). |x| < 2^30 and |r| <= 2^29 + 2^21: no overflow.
 */
static inline int8_t mcf_dsp_out_record(int32_t acc, const int32_t *rq)
{
    return (int8_t)__ssat(mcf_dsp_asr(mcf_smmlar(acc * 2, rq[0], rq[2] + mcf_dsp_asr(acc, 31)), rq[1]), 8);
}

/*
 * The same without the sign term when output_offset = -128 (then every
 * negative result saturates): for acc >= 0 the term is 0; for acc < 0,
 * x <= 0 (m >= 0) and both (x + r - 1) >> e and (x + r) >> e are at most
 * -128 + ((x + 2^(e-1)) >> e) <= -128, which SSAT takes to -128.
 * 5 instructions in the assembly.
 */
static inline int8_t mcf_dsp_out_record_lo(int32_t acc, const int32_t *rq)
{
    return (int8_t)__ssat(mcf_dsp_asr(mcf_smmlar(acc * 2, rq[0], rq[2]), rq[1]), 8);
}

/* Whether a layer's records requantize without the sign term
 * (mcf_dsp_out_record_lo): output_offset = -128. */
static inline int mcf_dsp_records_lo(int32_t output_offset)
{
    return output_offset == -128;
}

/* mcf_dsp_out_record, or _lo when `lo` (mcf_dsp_records_lo). */
MCF_INLINE int8_t mcf_dsp_out_records(int32_t acc, const int32_t *rq, int lo)
{
    return lo ? mcf_dsp_out_record_lo(acc, rq) : mcf_dsp_out_record(acc, rq);
}

/* A channel's record rq (above) from its multiplier and shift. */
static inline void mcf_dsp_record(int32_t multiplier, int32_t shift, int32_t output_offset, int32_t *rq)
{
    const int32_t e = -shift;
    rq[0] = multiplier;
    rq[1] = e;
    rq[2] = output_offset * (1 << e) + (1 << (e - 1));
}

/* The start of a Thumb-2 function `name` written in a top-level __asm__
 * (its own section, so --gc-sections drops it when unused), with the
 * callee-saved registers pushed; it returns with pop {r4-r11, pc}. */
#define MCF_ASM_FUNCTION(name)                                                 \
    ".pushsection .text." name ",\"ax\",%progbits\n\t"                       \
    ".syntax unified\n\t"                                                     \
    ".thumb\n\t"                                                              \
    ".p2align 2\n\t"                                                          \
    ".global " name "\n\t"                                                    \
    ".type " name ", %function\n\t"                                           \
    ".thumb_func\n" name ":\n\t"                                              \
    "push {r4-r11, lr}\n\t"

/* mcf_dsp_out_record of accumulator acc as assembly text: dst the saturated
 * int8, tmp scratch for the rounding term, m, e, r the record's registers
 * (multiplier, right shift, output_offset * 2^e + 2^(e-1)); acc is doubled.
 * tmp may be dst; dst may be acc. */
#define MCF_ASM_REQUANT(acc, dst, tmp, m, e, r)                                \
    "lsl " acc ", " acc ", #1\n\t"                                            \
    "add " tmp ", " r ", " acc ", asr #31\n\t"                               \
    "smmlar " dst ", " acc ", " m ", " tmp "\n\t"                            \
    "asr " dst ", " dst ", " e "\n\t"                                         \
    "ssat " dst ", #8, " dst "\n\t"
/* The same when output_offset = -128 (mcf_dsp_out_record_lo): no sign term. */
#define MCF_ASM_REQUANT_LO(acc, dst, m, e, r)                                  \
    "lsl " acc ", " acc ", #1\n\t"                                            \
    "smmlar " dst ", " acc ", " m ", " r "\n\t"                              \
    "asr " dst ", " dst ", " e "\n\t"                                         \
    "ssat " dst ", #8, " dst "\n\t"

/* Whether every one of `count` shifts lies in [lo, hi]. */
static inline int mcf_dsp_shifts_in(const int32_t *shift, int32_t count, int32_t lo, int32_t hi)
{
    int32_t i;
    for (i = 0; i < count; ++i) {
        if (shift[i] < lo || shift[i] > hi) {
            return 0;
        }
    }
    return 1;
}

/* Whether a layer's channels can requantize from records (mode
 * MCF_DSP_FAST_SAT and every shift in [-22, -1]). */
static inline int mcf_dsp_records_fit(int mode, const int32_t *shift, int32_t count)
{
    return mode == MCF_DSP_FAST_SAT && mcf_dsp_shifts_in(shift, count, -22, -1);
}

/* The mode of a layer: per_channel == MCF_DSP_FAST_REQUANT and the clamp range. */
static inline int mcf_dsp_mode(int32_t per_channel, int32_t act_min, int32_t act_max)
{
    if (per_channel != MCF_DSP_FAST_REQUANT) {
        return MCF_DSP_GENERAL;
    }
    return act_min == -128 && act_max == 127 ? MCF_DSP_FAST_SAT : MCF_DSP_FAST;
}

#endif /* MCF_DSP_H */
