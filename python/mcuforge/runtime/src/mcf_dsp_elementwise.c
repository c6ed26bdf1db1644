/*
 * mcuforge runtime, arm-dsp: the elementwise kernels of activation-heavy
 * models (MobileNetV3's hard-swish and squeeze-and-excitation), bit-exact
 * with the portable ones.
 *
 * mcf_dsp_lut_s8 (mcf_lut_s8: output = table[input + 128]): four values a
 * step, one 32-bit load, each byte an index by one SXTB (with ROR), four
 * table loads back to back, the bytes joined by three ORR and one 32-bit
 * store: about 5 cycles a value on Cortex-M4 against some 18 for the
 * portable byte loop.
 *
 * mcf_dsp_mul_s8 (mcf_mul_s8, TFLM's MulElementwise / BroadcastMul6DSlow):
 * the portable kernel walks every element through a function pointer and
 * recomputes its 4-D index; here the walk's three outer axes set the
 * pointers and the innermost axis is one loop with each input's stride
 * (squeeze-and-excitation's (1, H, W, C) x (1, 1, 1, C): both 1). The
 * product of two offset int8 values is below 2^17 in magnitude, so with a
 * shift in [-31, -1] TFLM's requantization takes its fast form
 * (mcf_dsp_requantize_fast) and, over the full clamp range, one SSAT; any
 * other shift the exact general form. One copy of the loop per mode.
 */
#include "mcf_dsp.h"

int32_t mcf_dsp_lut_s8_scratch_size(const mcf_lut_params *p)
{
    (void)p;
    return 0;
}

int mcf_dsp_lut_s8(const mcf_lut_params *p, const int8_t *input, int8_t *output, int8_t *scratch)
{
    const uint8_t *t;
    int32_t i = 0, n;
    (void)scratch;
    if (p->size < 0 || p->table == NULL || input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    t = (const uint8_t *)p->table + 128; /* t[x] for x = -128 .. 127 */
    n = p->size;
    for (; i + 4 <= n; i += 4) { /* in place too: a word is read before it is written */
        const uint32_t v = mcf_read32(input + i);
        const uint32_t b0 = t[(int8_t)v], b1 = t[(int8_t)(v >> 8)], b2 = t[(int8_t)(v >> 16)];
        const uint32_t b3 = t[(int32_t)v >> 24];
        mcf_write32(output + i, b0 | b1 << 8 | b2 << 16 | b3 << 24);
    }
    for (; i < n; ++i) {
        output[i] = (int8_t)t[input[i]];
    }
    return MCF_OK;
}

int32_t mcf_dsp_mul_s8_scratch_size(const mcf_mul_params *p)
{
    (void)p;
    return 0;
}

/* n outputs from a (stride sa) and b (stride sb), in requantization mode `mode`. */
MCF_INLINE void mul_run(const mcf_mul_params *p, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb,
                        int8_t *out, int32_t n, int mode)
{
    const int32_t o1 = p->input1_offset, o2 = p->input2_offset, m = p->multiplier, shift = p->shift;
    const int32_t oo = p->output_offset, lo = p->act_min, hi = p->act_max;
    int32_t i;
    for (i = 0; i < n; ++i, a += sa, b += sb) {
        out[i] = mcf_dsp_out((*a + o1) * (*b + o2), m, shift, oo, lo, hi, mode);
    }
}

static void mul_run_any(const mcf_mul_params *p, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb,
                        int8_t *out, int32_t n, int mode)
{
    if (mode == MCF_DSP_FAST_SAT) {
        mul_run(p, a, sa, b, sb, out, n, MCF_DSP_FAST_SAT);
    } else if (mode == MCF_DSP_FAST) {
        mul_run(p, a, sa, b, sb, out, n, MCF_DSP_FAST);
    } else {
        mul_run(p, a, sa, b, sb, out, n, MCF_DSP_GENERAL);
    }
}

int mcf_dsp_mul_s8(const mcf_mul_params *p, const int8_t *input1, const int8_t *input2, int8_t *output,
                   int8_t *scratch)
{
    const int32_t *shape = p->out_shape, *s1 = p->input1_stride, *s2 = p->input2_stride;
    int mode = MCF_DSP_GENERAL;
    int32_t i0, i1, i2;
    (void)scratch;
    if (p->shift < -31 || p->shift > 31 || p->multiplier < 0 || p->act_min < -128 || p->act_max > 127 ||
        p->act_min > p->act_max || p->size < 0 || input1 == NULL || input2 == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    if (p->shift <= -1) { /* |(x1 + o1) (x2 + o2)| <= 255 * 255 < 2^30 */
        mode = p->act_min == -128 && p->act_max == 127 ? MCF_DSP_FAST_SAT : MCF_DSP_FAST;
    }
    if (!p->broadcast) {
        mul_run_any(p, input1, 1, input2, 1, output, p->size, mode);
        return MCF_OK;
    }
    for (i0 = 0; i0 < shape[0]; ++i0) {
        for (i1 = 0; i1 < shape[1]; ++i1) {
            for (i2 = 0; i2 < shape[2]; ++i2) {
                const int32_t a = i0 * s1[0] + i1 * s1[1] + i2 * s1[2], b = i0 * s2[0] + i1 * s2[1] + i2 * s2[2];
                mul_run_any(p, input1 + a, s1[3], input2 + b, s2[3], output, shape[3], mode);
                output += shape[3];
            }
        }
    }
    return MCF_OK;
}
