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
