/*
 * mcuforge runtime: int8 transposed convolution.
 *
 * TFLM reference_integer_ops::TransposeConv scatters every input pixel
 * times the filter into an int32 buffer of the output's size. Here each
 * output value gathers the same products instead (the input pixels and taps
 * with in_y * stride_h - pad_top + k_y == out_y, likewise in x), so no
 * scratch buffer is needed; integer addition makes the sums equal. Then
 * bias, per-channel MultiplyByQuantizedMultiplier, output offset, clamp, as
 * in conv2d. Filter layout (out_c, k_h, k_w, in_c).
 */
#include "mcuforge/kernels.h"

int mcf_transpose_conv_s8(const mcf_transpose_conv_params *p, const int8_t *input, int8_t *output)
{
    int32_t oy, ox, oc, ky, kx, ic;

    if (p->in_h < 0 || p->in_w < 0 || p->in_c <= 0 || p->out_h < 0 || p->out_w < 0 || p->out_c <= 0 ||
        p->k_h <= 0 || p->k_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0 ||
        p->act_min < -128 || p->act_max > 127 || p->act_min > p->act_max ||
        p->filter == NULL || p->multiplier == NULL || p->shift == NULL || input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    for (oc = 0; oc < (p->per_channel ? p->out_c : 1); ++oc) {
        if (p->shift[oc] < -31 || p->shift[oc] > 31) {
            return MCF_ERR_ARG;
        }
    }
    for (oy = 0; oy < p->out_h; ++oy) {
        for (ox = 0; ox < p->out_w; ++ox) {
            for (oc = 0; oc < p->out_c; ++oc) {
                const int q = p->per_channel ? oc : 0;
                int32_t acc = 0, out;
                for (ky = 0; ky < p->k_h; ++ky) {
                    const int32_t ty = oy + p->pad_top - ky;
                    int32_t iy;
                    if (ty < 0 || ty % p->stride_h != 0) {
                        continue;
                    }
                    iy = ty / p->stride_h;
                    if (iy >= p->in_h) {
                        continue;
                    }
                    for (kx = 0; kx < p->k_w; ++kx) {
                        const int32_t tx = ox + p->pad_left - kx;
                        const int8_t *in, *w;
                        int32_t ix;
                        if (tx < 0 || tx % p->stride_w != 0) {
                            continue;
                        }
                        ix = tx / p->stride_w;
                        if (ix >= p->in_w) {
                            continue;
                        }
                        in = input + (iy * p->in_w + ix) * p->in_c;
                        w = p->filter + ((oc * p->k_h + ky) * p->k_w + kx) * p->in_c;
                        for (ic = 0; ic < p->in_c; ++ic) {
                            acc += (in[ic] + p->input_offset) * w[ic];
                        }
                    }
                }
                if (p->bias != NULL) {
                    acc += p->bias[oc];
                }
                out = mcf_multiply_by_quantized_multiplier(acc, p->multiplier[q], (int)p->shift[q]) +
                      p->output_offset;
                out = out < p->act_min ? p->act_min : out;
                out = out > p->act_max ? p->act_max : out;
                *output++ = (int8_t)out;
            }
        }
    }
    return MCF_OK;
}
