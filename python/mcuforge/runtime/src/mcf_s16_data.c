/*
 * mcuforge runtime: 16x8 data movement: PAD, STRIDED_SLICE, CONCATENATION
 * MAX_POOL_2D and AVERAGE_POOL_2D of int16 tensors (TFLM's reference kernels
 * copy, compare or average the int16 values; CONCATENATION and the pooling
 * require equal input and output quantization). Same
 * parameters and layouts as the int8 kernels (kernels.h).
 */
#include "mcuforge/kernels_s16.h"

static void fill(int16_t *dst, int32_t count, int16_t value)
{
    int32_t i;
    for (i = 0; i < count; ++i) {
        dst[i] = value;
    }
}

static void copy(int16_t *dst, const int16_t *src, int32_t count)
{
    int32_t i;
    for (i = 0; i < count; ++i) {
        dst[i] = src[i];
    }
}

int mcf_pad_s16(const mcf_pad_params *p, const int16_t *input, int16_t *output)
{
    const int32_t in_c = p->in_c;
    const int32_t out_c = p->pad_front + in_c + p->pad_back;
    const int32_t out_row = (p->pad_left + p->in_w + p->pad_right) * out_c;
    const int16_t value = (int16_t)p->pad_value;
    int32_t y, x;

    if (p->in_h < 0 || p->in_w < 0 || in_c < 0 || p->pad_top < 0 || p->pad_bottom < 0 ||
        p->pad_left < 0 || p->pad_right < 0 || p->pad_front < 0 || p->pad_back < 0 ||
        p->pad_value < -32768 || p->pad_value > 32767 || input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    fill(output, p->pad_top * out_row, value);
    fill(output + (p->pad_top + p->in_h) * out_row, p->pad_bottom * out_row, value);
    for (y = 0; y < p->in_h; ++y) {
        int16_t *out = output + (p->pad_top + y) * out_row;
        const int16_t *in = input + y * p->in_w * in_c;
        fill(out, p->pad_left * out_c, value);
        out += p->pad_left * out_c;
        for (x = 0; x < p->in_w; ++x) {
            fill(out, p->pad_front, value);
            copy(out + p->pad_front, in, in_c);
            fill(out + p->pad_front + in_c, p->pad_back, value);
            out += out_c;
            in += in_c;
        }
        fill(out, p->pad_right * out_c, value);
    }
    return MCF_OK;
}

int mcf_strided_slice_s16(const mcf_strided_slice_params *p, const int16_t *input, int16_t *output)
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
                const int16_t *in = input + (p->begin[0] + i0 * p->stride[0]) * in_stride[0] +
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

int mcf_concat_s16(const mcf_concat_s16_params *p, const int16_t *const *inputs, int16_t *output)
{
    int32_t o, k;
    if (p->num_inputs <= 0 || p->outer < 0 || p->inner == NULL || inputs == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    for (k = 0; k < p->num_inputs; ++k) {
        if (p->inner[k] < 0 || inputs[k] == NULL) {
            return MCF_ERR_ARG;
        }
    }
    for (o = 0; o < p->outer; ++o) {
        for (k = 0; k < p->num_inputs; ++k) {
            copy(output, inputs[k] + o * p->inner[k], p->inner[k]);
            output += p->inner[k];
        }
    }
    return MCF_OK;
}

static int pool_valid(const mcf_pool_s16_params *p, const int16_t *input, const int16_t *output)
{
    return p->in_h > 0 && p->in_w > 0 && p->channels > 0 && p->out_h > 0 && p->out_w > 0 && p->k_h > 0 &&
           p->k_w > 0 && p->stride_h > 0 && p->stride_w > 0 && p->act_min >= -32768 && p->act_max <= 32767 &&
           p->act_min <= p->act_max && input != NULL && output != NULL;
}

int mcf_avg_pool_s16(const mcf_pool_s16_params *p, const int16_t *input, int16_t *output)
{
    int32_t oy, ox, c, ky, kx;

    if (!pool_valid(p, input, output)) {
        return MCF_ERR_ARG;
    }
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = oy * p->stride_h - p->pad_top;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t x0 = ox * p->stride_w - p->pad_left;
            for (c = 0; c < p->channels; ++c) {
                int32_t acc = 0, count = 0;
                for (ky = 0; ky < p->k_h; ++ky) {
                    const int32_t iy = y0 + ky;
                    if (iy < 0 || iy >= p->in_h) {
                        continue;
                    }
                    for (kx = 0; kx < p->k_w; ++kx) {
                        const int32_t ix = x0 + kx;
                        if (ix < 0 || ix >= p->in_w) {
                            continue;
                        }
                        acc += input[(iy * p->in_w + ix) * p->channels + c];
                        count++;
                    }
                }
                if (count == 0) {
                    return MCF_ERR_ARG;
                }
                acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                acc = acc < p->act_min ? p->act_min : acc;
                acc = acc > p->act_max ? p->act_max : acc;
                *output++ = (int16_t)acc;
            }
        }
    }
    return MCF_OK;
}

int mcf_max_pool_s16(const mcf_pool_s16_params *p, const int16_t *input, int16_t *output)
{
    int32_t oy, ox, c, ky, kx;

    if (!pool_valid(p, input, output)) {
        return MCF_ERR_ARG;
    }
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = oy * p->stride_h - p->pad_top;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t x0 = ox * p->stride_w - p->pad_left;
            for (c = 0; c < p->channels; ++c) {
                int32_t best = -32769;
                for (ky = 0; ky < p->k_h; ++ky) {
                    const int32_t iy = y0 + ky;
                    if (iy < 0 || iy >= p->in_h) {
                        continue;
                    }
                    for (kx = 0; kx < p->k_w; ++kx) {
                        const int32_t ix = x0 + kx;
                        int32_t v;
                        if (ix < 0 || ix >= p->in_w) {
                            continue;
                        }
                        v = input[(iy * p->in_w + ix) * p->channels + c];
                        best = v > best ? v : best;
                    }
                }
                best = best < p->act_min ? p->act_min : best;
                best = best > p->act_max ? p->act_max : best;
                *output++ = (int16_t)best;
            }
        }
    }
    return MCF_OK;
}
