/*
 * mcuforge runtime: int8 strided slice of a tensor of up to 4 dimensions.
 *
 * TFLM STRIDED_SLICE (reference_ops::StridedSlice) and ONNX Slice: output
 * index i along axis d reads input index begin[d] + i * stride[d] (a stride
 * may be negative); begin, stride and out_shape are resolved by the
 * generator (masks, negative and out-of-range indices). Values are copied.
 */
#include "mcuforge/kernels.h"

int mcf_strided_slice_s8(const mcf_strided_slice_params *p, const int8_t *input, int8_t *output)
{
    int32_t in_stride[4], d, i0, i1, i2, i3;

    if (input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    in_stride[3] = 1;
    for (d = 2; d >= 0; --d) {
        in_stride[d] = in_stride[d + 1] * p->in_shape[d + 1];
    }
    for (d = 0; d < 4; ++d) {
        const int32_t last = p->begin[d] + (p->out_shape[d] - 1) * p->stride[d];
        if (p->in_shape[d] < 0 || p->out_shape[d] < 0 ||
            (p->out_shape[d] > 0 && (p->begin[d] < 0 || p->begin[d] >= p->in_shape[d] ||
                                     last < 0 || last >= p->in_shape[d]))) {
            return MCF_ERR_ARG;
        }
    }
    for (i0 = 0; i0 < p->out_shape[0]; ++i0) {
        for (i1 = 0; i1 < p->out_shape[1]; ++i1) {
            for (i2 = 0; i2 < p->out_shape[2]; ++i2) {
                const int8_t *in = input + (p->begin[0] + i0 * p->stride[0]) * in_stride[0] +
                                   (p->begin[1] + i1 * p->stride[1]) * in_stride[1] +
                                   (p->begin[2] + i2 * p->stride[2]) * in_stride[2] + p->begin[3];
                for (i3 = 0; i3 < p->out_shape[3]; ++i3) {
                    *output++ = in[i3 * p->stride[3]];
                }
            }
        }
    }
    return MCF_OK;
}
