/*
 * mcuforge runtime: int8 nearest-neighbour resize of an (h, w, c) map.
 *
 * TFLM RESIZE_NEAREST_NEIGHBOR and ONNX Resize (mode nearest): output row y
 * copies input row row_index[y], output column x input column
 * col_index[x]; the generator computes both tables with the source
 * format's coordinate rules (align_corners, half_pixel_centers, ONNX's
 * coordinate_transformation_mode and nearest_mode), in float32 where TFLM
 * computes in float.
 */
#include <string.h>

#include "mcuforge/kernels.h"

int mcf_resize_nearest_s8(const mcf_resize_nearest_params *p, const int8_t *input, int8_t *output)
{
    int32_t y, x;
    const size_t pixel = (size_t)p->channels;

    if (p->in_h <= 0 || p->in_w <= 0 || p->channels <= 0 || p->out_h < 0 || p->out_w < 0 ||
        p->row_index == NULL || p->col_index == NULL || input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    for (y = 0; y < p->out_h; ++y) {
        if (p->row_index[y] < 0 || p->row_index[y] >= p->in_h) {
            return MCF_ERR_ARG;
        }
    }
    for (x = 0; x < p->out_w; ++x) {
        if (p->col_index[x] < 0 || p->col_index[x] >= p->in_w) {
            return MCF_ERR_ARG;
        }
    }
    for (y = 0; y < p->out_h; ++y) {
        const int8_t *row = input + (size_t)p->row_index[y] * (size_t)p->in_w * pixel;
        for (x = 0; x < p->out_w; ++x) {
            memcpy(output, row + (size_t)p->col_index[x] * pixel, pixel);
            output += pixel;
        }
    }
    return MCF_OK;
}
