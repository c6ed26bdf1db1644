/*
 * mcuforge runtime, arm-dsp: int8 elementwise add, bit-exact with mcf_add_s8
 * (TFLM reference_integer_ops::AddFunc).
 *
 * Each input's term RoundingDivideByPOT(SRDHM((x + offset) << left_shift, m),
 * -shift) depends on nothing but its int8 value x. The generator tabulates
 * both (codegen/arm_dsp.py add_tables, in flash):
 *   tables[x + 128]        input1's term, x in [-128, 127]
 *   tables[256 + x + 128]  input2's term
 *   tables[512]            the sum's requantization: MCF_DSP_GENERAL, or
 *                          MCF_DSP_FAST / MCF_DSP_FAST_SAT when the generator
 *                          proved |term1 + term2| < 2^30 and output_shift in
 *                          [-31, -1] (mcf_dsp_requantize_fast), _SAT when the
 *                          clamp is [-128, 127] (one SSAT).
 * Per element: two byte loads, two table loads, one add, the output
 * requantization (5 instructions in the fast modes), one store; two
 * elements per step. Cost on Cortex-M4 (cycle model of docs/speed.md, the
 * MLPerf Tiny IC's residual adds): 18.0 cycles per element against 168 for
 * mcf_add_s8; the tables cost 2,052 bytes of flash per layer.
 *
 * output may equal input1 or input2 (in place): each step reads its two
 * elements of both inputs before it writes them.
 */
#include "mcf_dsp.h"

/* A compiler barrier: the loads written before it are issued before the
 * ones after it (gcc interleaves them otherwise, and a load whose address
 * is the previous load's result cannot pipeline). */
#if defined(__GNUC__)
#define MCF_LOADS_FIRST() __asm__ volatile("" ::: "memory")
#else
#define MCF_LOADS_FIRST() ((void)0)
#endif

/* The layer's constants in locals: output is int8_t and may alias anything,
 * so fields read through p would be read again after every store. */
MCF_INLINE void add_loop(const mcf_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output,
                         const int32_t *tables, int mode)
{
    const int32_t *t1 = tables + 128, *t2 = tables + 256 + 128;
    const int32_t multiplier = p->output_multiplier, shift = p->output_shift, offset = p->output_offset;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    int32_t pairs = p->size >> 1;
    for (; pairs > 0; --pairs) {
        const int32_t a0 = input1[0], b0 = input2[0], a1 = input1[1], b1 = input2[1];
        int32_t sum0, sum1;
        MCF_LOADS_FIRST(); /* the four byte loads pipeline, then the four table loads */
        sum0 = (int32_t)((uint32_t)t1[a0] + (uint32_t)t2[b0]);
        sum1 = (int32_t)((uint32_t)t1[a1] + (uint32_t)t2[b1]);
        MCF_LOADS_FIRST();
        output[0] = mcf_dsp_out(sum0, multiplier, shift, offset, act_min, act_max, mode);
        output[1] = mcf_dsp_out(sum1, multiplier, shift, offset, act_min, act_max, mode);
        input1 += 2;
        input2 += 2;
        output += 2;
    }
    if (p->size & 1) {
        const int32_t sum = (int32_t)((uint32_t)t1[input1[0]] + (uint32_t)t2[input2[0]]);
        output[0] = mcf_dsp_out(sum, multiplier, shift, offset, act_min, act_max, mode);
    }
}

int mcf_dsp_add_s8(const mcf_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output,
                   const int32_t *tables)
{
    if (p->size < 0 || p->output_shift > 0 || p->output_shift < -31 || p->output_multiplier < 0 ||
        p->act_min < -128 || p->act_max > 127 || p->act_min > p->act_max || input1 == NULL || input2 == NULL ||
        output == NULL || tables == NULL) {
        return MCF_ERR_ARG;
    }
    switch (tables[MCF_DSP_ADD_MODE]) {
    case MCF_DSP_FAST_SAT:
        if (p->act_min != -128 || p->act_max != 127 || p->output_shift > -1) {
            return MCF_ERR_ARG;
        }
        add_loop(p, input1, input2, output, tables, MCF_DSP_FAST_SAT);
        break;
    case MCF_DSP_FAST:
        if (p->output_shift > -1) {
            return MCF_ERR_ARG;
        }
        add_loop(p, input1, input2, output, tables, MCF_DSP_FAST);
        break;
    case MCF_DSP_GENERAL:
        add_loop(p, input1, input2, output, tables, MCF_DSP_GENERAL);
        break;
    default:
        return MCF_ERR_ARG;
    }
    return MCF_OK;
}
