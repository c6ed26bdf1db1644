/*
 * mcuforge runtime: int8 2-D convolution.
 *
 * TFLM reference_integer_ops::ConvPerChannel
 * (tensorflow/lite/kernels/internal/reference/integer_ops/conv.h):
 *   acc = sum over taps inside the input of filter * (input + input_offset)
 *   acc += bias[oc]
 *   acc = MultiplyByQuantizedMultiplier(acc, multiplier[oc], shift[oc])
 *   out = clamp(acc + output_offset, act_min, act_max)
 * Taps that fall into the padding contribute nothing (TFLite pads with the
 * input zero point).
 */
#include "mcuforge/kernels.h"
#include "mcf_window.h"

static int shifts_valid(const int32_t *multiplier, const int32_t *shift, int32_t count)
{
    int32_t i;
    if (multiplier == NULL || shift == NULL) {
        return 0;
    }
    for (i = 0; i < count; ++i) {
        if (shift[i] < -31 || shift[i] > 31) {
            return 0;
        }
    }
    return 1;
}

int mcf_conv2d_s8(const mcf_conv2d_params *p, const int8_t *input, int8_t *output)
{
    const int32_t in_w = p->in_w, in_c = p->in_c;
    const int32_t out_c = p->out_c;
    const int32_t k_w = p->k_w;
    const int32_t input_offset = p->input_offset;
    const int32_t filter_row = k_w * in_c;   /* filter bytes per kernel row */
    const int32_t filter_size = p->k_h * filter_row;
    int32_t oy, ox, oc, ky, kx, ic;

    if (p->in_h <= 0 || in_w <= 0 || in_c <= 0 || p->out_h <= 0 || p->out_w <= 0 ||
        out_c <= 0 || p->k_h <= 0 || k_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0 ||
        p->dilation_h <= 0 || p->dilation_w <= 0 ||
        p->act_min < -128 || p->act_max > 127 || p->act_min > p->act_max ||
        p->filter == NULL || input == NULL || output == NULL ||
        !shifts_valid(p->multiplier, p->shift, p->per_channel ? out_c : 1)) {
        return MCF_ERR_ARG;
    }

    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = oy * p->stride_h - p->pad_top;
        const int32_t ky_start = mcf_first_tap(y0, p->dilation_h);
        const int32_t ky_end = mcf_end_tap(y0, p->dilation_h, p->in_h, p->k_h);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t x0 = ox * p->stride_w - p->pad_left;
            const int32_t kx_start = mcf_first_tap(x0, p->dilation_w);
            const int32_t kx_end = mcf_end_tap(x0, p->dilation_w, in_w, k_w);
            int8_t *out = output + ((int32_t)oy * p->out_w + ox) * out_c;
            for (oc = 0; oc < out_c; ++oc) {
                const int8_t *filter = p->filter + oc * filter_size;
                const int32_t q = p->per_channel ? oc : 0;
                int32_t acc = 0;
                for (ky = ky_start; ky < ky_end; ++ky) {
                    const int32_t iy = y0 + ky * p->dilation_h;
                    const int8_t *in_row = input + (iy * in_w) * in_c;
                    const int8_t *f_row = filter + ky * filter_row;
                    for (kx = kx_start; kx < kx_end; ++kx) {
                        const int8_t *in_px = in_row + (x0 + kx * p->dilation_w) * in_c;
                        const int8_t *f_px = f_row + kx * in_c;
                        for (ic = 0; ic < in_c; ++ic) {
                            acc += (int32_t)f_px[ic] * ((int32_t)in_px[ic] + input_offset);
                        }
                    }
                }
                if (p->bias != NULL) {
                    acc += p->bias[oc];
                }
                acc = mcf_multiply_by_quantized_multiplier(acc, p->multiplier[q], (int)p->shift[q]);
                acc += p->output_offset;
                acc = acc < p->act_min ? p->act_min : acc;
                acc = acc > p->act_max ? p->act_max : acc;
                out[oc] = (int8_t)acc;
            }
        }
    }
    return MCF_OK;
}
