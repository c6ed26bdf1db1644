/*
 * mcuforge runtime: TILE (TFLite TILE, ONNX Tile; Keras 3 writes
 * UpSampling2D as RESHAPE + TILE + RESHAPE): output element (o0, o1, o2, o3)
 * is input element (o0 % in0, o1 % in1, o2 % in2, o3 % in3). Bytes are
 * copied (input and output share scale and zero point); rows along the last
 * axis are copied whole.
 */
#include "mcuforge/kernels.h"

int mcf_tile_s8(const mcf_tile_params *p, const int8_t *input, int8_t *output)
{
    const int32_t *in = p->in_shape, *m = p->multiples;
    int32_t o0, o1, o2, r, i;

    if (input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    for (i = 0; i < 4; ++i) {
        if (in[i] <= 0 || m[i] <= 0) {
            return MCF_ERR_ARG;
        }
    }
    for (o0 = 0; o0 < in[0] * m[0]; ++o0) {
        for (o1 = 0; o1 < in[1] * m[1]; ++o1) {
            for (o2 = 0; o2 < in[2] * m[2]; ++o2) {
                const int8_t *row = input + (((o0 % in[0]) * in[1] + o1 % in[1]) * in[2] + o2 % in[2]) * in[3];
                for (r = 0; r < m[3]; ++r) {
                    for (i = 0; i < in[3]; ++i) {
                        *output++ = row[i];
                    }
                }
            }
        }
    }
    return MCF_OK;
}
