/*
 * mcuforge runtime, private: the element walk shared by the binary
 * elementwise kernels (mul, sub, maximum, minimum).
 *
 * broadcast == 0: both inputs and the output have `size` elements, walked
 * in order (output element i may overwrite input element i: in place).
 * broadcast != 0: the output has out_shape (4 dimensions, channels last),
 * input k is read at sum(index[d] * input_k_stride[d]), a stride being 0
 * along an axis that input repeats (TFLite's BroadcastBinaryOp4DSlow).
 */
#ifndef MCF_BROADCAST_H
#define MCF_BROADCAST_H

#include "mcuforge/kernels.h"

typedef int8_t (*mcf_binary_fn)(const void *params, int32_t a, int32_t b);

/* A run of the walk: n outputs from a (stride sa) and b (stride sb). */
typedef void (*mcf_binary_run)(const void *params, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb,
                               int8_t *out, int32_t n);

/* The walk by runs: broadcast == 0, one run of `size`; else one run per
 * innermost row of out_shape, its pointers set by the three outer axes
 * (the arm-dsp kernels' runs keep the layer's constants in registers). */
static inline int mcf_binary_walk(int32_t size, int32_t broadcast, const int32_t *out_shape,
                                  const int32_t *input1_stride, const int32_t *input2_stride,
                                  const int8_t *input1, const int8_t *input2, int8_t *output,
                                  mcf_binary_run run, const void *params)
{
    const int32_t *shape = out_shape, *s1 = input1_stride, *s2 = input2_stride;
    int32_t d, i0, i1, i2;

    if (size < 0 || input1 == NULL || input2 == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    if (!broadcast) {
        run(params, input1, 1, input2, 1, output, size);
        return MCF_OK;
    }
    for (d = 0; d < 4; ++d) {
        if (shape[d] < 0 || s1[d] < 0 || s2[d] < 0) {
            return MCF_ERR_ARG;
        }
    }
    if (shape[0] * shape[1] * shape[2] * shape[3] != size) {
        return MCF_ERR_ARG;
    }
    for (i0 = 0; i0 < shape[0]; ++i0) {
        for (i1 = 0; i1 < shape[1]; ++i1) {
            for (i2 = 0; i2 < shape[2]; ++i2) {
                const int32_t a = i0 * s1[0] + i1 * s1[1] + i2 * s1[2], b = i0 * s2[0] + i1 * s2[1] + i2 * s2[2];
                run(params, input1 + a, s1[3], input2 + b, s2[3], output, shape[3]);
                output += shape[3];
            }
        }
    }
    return MCF_OK;
}

int mcf_binary_apply(int32_t size, int32_t broadcast, const int32_t *out_shape,
                     const int32_t *input1_stride, const int32_t *input2_stride,
                     const int8_t *input1, const int8_t *input2, int8_t *output,
                     mcf_binary_fn fn, const void *params);

/* clamp to [lo, hi] */
static inline int32_t mcf_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

#endif /* MCF_BROADCAST_H */
