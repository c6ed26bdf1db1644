/*
 * mcuforge runtime, arm-dsp: the elementwise kernels of activation-heavy
 * models (MobileNetV3's hard-swish and squeeze-and-excitation, gates and
 * clamps of two branches), bit-exact with the portable ones.
 *
 * mcf_dsp_lut_s8 (mcf_lut_s8: output = table[input + 128]): four values a
 * step, one 32-bit load, each byte an index by one SXTB (with ROR), four
 * table loads back to back, the bytes joined by three ORR and one 32-bit
 * store: about 5 cycles a value on Cortex-M4 against some 18 for the
 * portable byte loop.
 *
 * The binary ops with broadcasting (mcf_dsp_mul_s8, _sub_s8, _maximum_s8,
 * _minimum_s8; TFLM's MulElementwise / BroadcastMul6DSlow, SubElementwise /
 * BroadcastQuantSubSlow, MAXIMUM / MINIMUM): the portable kernels call a
 * function per element through the walk (mcf_broadcast.h) and requantize
 * with the portable 64-bit arithmetic. Here the walk's three outer axes
 * set the pointers and the innermost axis is one run, a loop with each
 * input's stride (squeeze-and-excitation's (1, H, W, C) x (1, 1, 1, C):
 * both 1), the layer's constants in registers, one copy of the run per
 * requantization mode.
 * - MUL: the product of two offset int8 values is below 2^17 in magnitude,
 *   so a shift in [-31, -1] takes the fast form (mcf_dsp_requantize_fast)
 *   and over the full clamp range one SSAT; any other shift the exact
 *   general form. The multiplier must be >= 0 (quantize_multiplier gives no
 *   other; the generator offers the kernel only then).
 * - SUB, MAXIMUM, MINIMUM: what each input contributes depends on its int8
 *   value alone, so the generator tabulates it (codegen/arm_dsp.py), as for
 *   mcf_dsp_add_s8: SUB's tables are ADD's with input2's term negated (the
 *   difference is their sum, requantized in the mode of tables[512]);
 *   MAXIMUM's and MINIMUM's two 256-byte tables hold each input's value in
 *   the output's quantization (TFLM's QUANTIZE), so an element is two byte
 *   loads, two table loads and a compare.
 */
#include "mcf_broadcast.h"
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
        const uint32_t b3 = t[(int8_t)(v >> 24)];
        mcf_write32(output + i, b0 | b1 << 8 | b2 << 16 | b3 << 24);
    }
    for (; i < n; ++i) {
        output[i] = (int8_t)t[input[i]];
    }
    return MCF_OK;
}

/* The run function `name`: fn's copy with its last argument `mode` (a constant that specializes it), the job
 * cast to `type`. */
#define MCF_RUN_COPY(name, fn, type, mode)                                                                   \
    static void name(const void *job, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb, int8_t *out, \
                     int32_t n)                                                                              \
    {                                                                                                        \
        fn((const type *)job, a, sa, b, sb, out, n, mode);                                                   \
    }

/* ---- multiply */

int32_t mcf_dsp_mul_s8_scratch_size(const mcf_mul_params *p)
{
    (void)p;
    return 0;
}

/* A multiply run in requantization mode `mode`. */
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

MCF_RUN_COPY(mul_run_sat, mul_run, mcf_mul_params, MCF_DSP_FAST_SAT)
MCF_RUN_COPY(mul_run_fast, mul_run, mcf_mul_params, MCF_DSP_FAST)
MCF_RUN_COPY(mul_run_general, mul_run, mcf_mul_params, MCF_DSP_GENERAL)

int mcf_dsp_mul_s8(const mcf_mul_params *p, const int8_t *input1, const int8_t *input2, int8_t *output,
                   int8_t *scratch)
{
    mcf_binary_run run = mul_run_general;
    (void)scratch;
    if (p->shift < -31 || p->shift > 31 || p->multiplier < 0 || p->act_min < -128 || p->act_max > 127 ||
        p->act_min > p->act_max) {
        return MCF_ERR_ARG;
    }
    if (p->shift <= -1) { /* |(x1 + o1) (x2 + o2)| <= 255 * 255 < 2^30 */
        run = p->act_min == -128 && p->act_max == 127 ? mul_run_sat : mul_run_fast;
    }
    return mcf_binary_walk(p->size, p->broadcast, p->out_shape, p->input1_stride, p->input2_stride, input1,
                           input2, output, run, p);
}

/* ---- subtract, from the tables: input1's term, minus input2's, the mode (mcf_dsp_add_s8's layout) */

typedef struct {
    const mcf_sub_params *p;
    const int32_t *tables;
} sub_job;

MCF_INLINE void sub_run(const sub_job *job, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb, int8_t *out,
                        int32_t n, int mode)
{
    const int32_t *t1 = job->tables + 128, *t2 = job->tables + 256 + 128;
    const int32_t m = job->p->output_multiplier, shift = job->p->output_shift, oo = job->p->output_offset;
    const int32_t lo = job->p->act_min, hi = job->p->act_max;
    int32_t i;
    for (i = 0; i < n; ++i, a += sa, b += sb) {
        out[i] = mcf_dsp_out((int32_t)((uint32_t)t1[*a] + (uint32_t)t2[*b]), m, shift, oo, lo, hi, mode);
    }
}

MCF_RUN_COPY(sub_run_sat, sub_run, sub_job, MCF_DSP_FAST_SAT)
MCF_RUN_COPY(sub_run_fast, sub_run, sub_job, MCF_DSP_FAST)
MCF_RUN_COPY(sub_run_general, sub_run, sub_job, MCF_DSP_GENERAL)

int mcf_dsp_sub_s8(const mcf_sub_params *p, const int8_t *input1, const int8_t *input2, int8_t *output,
                   const int32_t *tables)
{
    sub_job job;
    mcf_binary_run run;
    if (p->output_shift > 0 || p->output_shift < -31 || p->output_multiplier < 0 || p->act_min < -128 ||
        p->act_max > 127 || p->act_min > p->act_max || tables == NULL) {
        return MCF_ERR_ARG;
    }
    switch (tables[MCF_DSP_ADD_MODE]) {
    case MCF_DSP_FAST_SAT:
        if (p->act_min != -128 || p->act_max != 127 || p->output_shift > -1) {
            return MCF_ERR_ARG;
        }
        run = sub_run_sat;
        break;
    case MCF_DSP_FAST:
        if (p->output_shift > -1) {
            return MCF_ERR_ARG;
        }
        run = sub_run_fast;
        break;
    case MCF_DSP_GENERAL:
        run = sub_run_general;
        break;
    default:
        return MCF_ERR_ARG;
    }
    job.p = p;
    job.tables = tables;
    return mcf_binary_walk(p->size, p->broadcast, p->out_shape, p->input1_stride, p->input2_stride, input1,
                           input2, output, run, &job);
}

/* ---- maximum and minimum, from the tables: each input's values in the output's quantization */

MCF_INLINE void max_min_run(const int8_t *tables, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb,
                            int8_t *out, int32_t n, int is_max)
{
    const int8_t *t1 = tables + 128, *t2 = tables + 256 + 128;
    int32_t i;
    for (i = 0; i < n; ++i, a += sa, b += sb) {
        const int32_t x = t1[*a], y = t2[*b];
        out[i] = (int8_t)(is_max ? (x > y ? x : y) : (x < y ? x : y));
    }
}

MCF_RUN_COPY(max_run, max_min_run, int8_t, 1)
MCF_RUN_COPY(min_run, max_min_run, int8_t, 0)

static int max_min(const mcf_maximum_minimum_params *p, const int8_t *input1, const int8_t *input2, int8_t *output,
                   const int8_t *tables, mcf_binary_run run)
{
    if (tables == NULL) {
        return MCF_ERR_ARG;
    }
    return mcf_binary_walk(p->size, p->broadcast, p->out_shape, p->input1_stride, p->input2_stride, input1,
                           input2, output, run, tables);
}

int mcf_dsp_maximum_s8(const mcf_maximum_minimum_params *p, const int8_t *input1, const int8_t *input2,
                       int8_t *output, const int8_t *tables)
{
    return max_min(p, input1, input2, output, tables, max_run);
}

int mcf_dsp_minimum_s8(const mcf_maximum_minimum_params *p, const int8_t *input1, const int8_t *input2,
                       int8_t *output, const int8_t *tables)
{
    return max_min(p, input1, input2, output, tables, min_run);
}
