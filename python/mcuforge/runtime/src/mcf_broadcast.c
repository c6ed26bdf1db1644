/*
 * mcuforge runtime: the element walk of the binary elementwise kernels
 * (see mcf_broadcast.h).
 */
#include "mcf_broadcast.h"

int mcf_binary_apply(int32_t size, int32_t broadcast, const int32_t *out_shape,
                     const int32_t *input1_stride, const int32_t *input2_stride,
                     const int8_t *input1, const int8_t *input2, int8_t *output,
                     mcf_binary_fn fn, const void *params)
{
    int32_t i, d, i0, i1, i2, i3;

    if (size < 0 || input1 == NULL || input2 == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    if (!broadcast) {
        for (i = 0; i < size; ++i) {
            output[i] = fn(params, input1[i], input2[i]);
        }
        return MCF_OK;
    }
    for (d = 0; d < 4; ++d) {
        if (out_shape[d] < 0 || input1_stride[d] < 0 || input2_stride[d] < 0) {
            return MCF_ERR_ARG;
        }
    }
    if (out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3] != size) {
        return MCF_ERR_ARG;
    }
    for (i0 = 0; i0 < out_shape[0]; ++i0) {
        for (i1 = 0; i1 < out_shape[1]; ++i1) {
            for (i2 = 0; i2 < out_shape[2]; ++i2) {
                const int8_t *a = input1 + i0 * input1_stride[0] + i1 * input1_stride[1] + i2 * input1_stride[2];
                const int8_t *b = input2 + i0 * input2_stride[0] + i1 * input2_stride[1] + i2 * input2_stride[2];
                for (i3 = 0; i3 < out_shape[3]; ++i3) {
                    *output++ = fn(params, a[i3 * input1_stride[3]], b[i3 * input2_stride[3]]);
                }
            }
        }
    }
    return MCF_OK;
}
