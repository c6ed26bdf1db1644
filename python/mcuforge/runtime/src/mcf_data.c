/*
 * mcuforge runtime: int8 data movement: requantize, concatenation, constant
 * padding and transpose.
 *
 * Requantize follows TFLM's QUANTIZE int8 -> int8
 * (tensorflow/lite/kernels/internal/reference/requantize.h):
 *   out = clamp(MultiplyByQuantizedMultiplier(x + input_offset, multiplier,
 *               shift) + output_offset, act_min, act_max)
 * multiplier == 1 << 30 with shift == 1 is the exact identity, so with
 * cancelling offsets the data is only copied (and clamped).
 */
#include <string.h>

#include "mcuforge/kernels.h"

static int requant_valid(const mcf_requantize_params *p)
{
    return p->shift >= -31 && p->shift <= 31 &&
           p->act_min >= -128 && p->act_max <= 127 && p->act_min <= p->act_max;
}

/* Requantize `size` elements; output may equal input. */
static void requantize_run(const mcf_requantize_params *p, int32_t size,
                           const int8_t *input, int8_t *output)
{
    const int32_t act_min = p->act_min, act_max = p->act_max;
    int32_t i;

    if (p->multiplier == ((int32_t)1 << 30) && p->shift == 1 &&
        p->input_offset + p->output_offset == 0) {
        if (act_min == -128 && act_max == 127) {
            if (output != input) {
                memmove(output, input, (size_t)size);
            }
            return;
        }
        for (i = 0; i < size; ++i) {
            int32_t v = input[i];
            v = v < act_min ? act_min : v;
            v = v > act_max ? act_max : v;
            output[i] = (int8_t)v;
        }
        return;
    }
    for (i = 0; i < size; ++i) {
        int32_t v = mcf_multiply_by_quantized_multiplier(input[i] + p->input_offset,
                                                         p->multiplier, (int)p->shift) +
                    p->output_offset;
        v = v < act_min ? act_min : v;
        v = v > act_max ? act_max : v;
        output[i] = (int8_t)v;
    }
}

int mcf_requantize_s8(const mcf_requantize_params *p, const int8_t *input, int8_t *output)
{
    if (p->size < 0 || !requant_valid(p) || input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    requantize_run(p, p->size, input, output);
    return MCF_OK;
}

int mcf_concat_s8(const mcf_concat_params *p, const int8_t *const *inputs, int8_t *output)
{
    int32_t i, o, total = 0;

    if (p->num_inputs <= 0 || p->outer < 0 || p->inner == NULL || p->requant == NULL ||
        inputs == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    for (i = 0; i < p->num_inputs; ++i) {
        if (p->inner[i] < 0 || inputs[i] == NULL || !requant_valid(&p->requant[i])) {
            return MCF_ERR_ARG;
        }
        total += p->inner[i];
    }

    for (o = 0; o < p->outer; ++o) {
        int8_t *out = output + o * total;
        for (i = 0; i < p->num_inputs; ++i) {
            const int32_t inner = p->inner[i];
            requantize_run(&p->requant[i], inner, inputs[i] + o * inner, out);
            out += inner;
        }
    }
    return MCF_OK;
}

int mcf_pad_s8(const mcf_pad_params *p, const int8_t *input, int8_t *output)
{
    const int32_t in_c = p->in_c;
    const int32_t out_w = p->pad_left + p->in_w + p->pad_right;
    const int32_t out_c = p->pad_front + in_c + p->pad_back;
    const int32_t out_row = out_w * out_c;
    int32_t y, x;

    if (p->in_h < 0 || p->in_w < 0 || in_c < 0 || p->pad_top < 0 || p->pad_bottom < 0 ||
        p->pad_left < 0 || p->pad_right < 0 || p->pad_front < 0 || p->pad_back < 0 ||
        p->pad_value < -128 || p->pad_value > 127 || input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }

    /* Rows above and below. */
    memset(output, p->pad_value, (size_t)(p->pad_top * out_row));
    memset(output + (p->pad_top + p->in_h) * out_row, p->pad_value,
           (size_t)(p->pad_bottom * out_row));
    for (y = 0; y < p->in_h; ++y) {
        int8_t *out = output + (p->pad_top + y) * out_row;
        const int8_t *in = input + y * p->in_w * in_c;
        memset(out, p->pad_value, (size_t)(p->pad_left * out_c));
        out += p->pad_left * out_c;
        for (x = 0; x < p->in_w; ++x) {
            memset(out, p->pad_value, (size_t)p->pad_front);
            memcpy(out + p->pad_front, in, (size_t)in_c);
            memset(out + p->pad_front + in_c, p->pad_value, (size_t)p->pad_back);
            out += out_c;
            in += in_c;
        }
        memset(out, p->pad_value, (size_t)(p->pad_right * out_c));
    }
    return MCF_OK;
}

int mcf_transpose_s8(const mcf_transpose_params *p, const int8_t *input, int8_t *output)
{
    int32_t in_stride[4], out_shape[4], stride[4];
    int32_t i0, i1, i2, i3, d;
    int seen = 0;

    if (input == NULL || output == NULL) {
        return MCF_ERR_ARG;
    }
    for (d = 0; d < 4; ++d) {
        if (p->in_shape[d] < 0 || p->perm[d] < 0 || p->perm[d] > 3) {
            return MCF_ERR_ARG;
        }
        seen |= 1 << p->perm[d];
    }
    if (seen != 0xF) {
        return MCF_ERR_ARG;
    }
    in_stride[3] = 1;
    for (d = 2; d >= 0; --d) {
        in_stride[d] = in_stride[d + 1] * p->in_shape[d + 1];
    }
    /* Output axis d walks input axis perm[d]. */
    for (d = 0; d < 4; ++d) {
        out_shape[d] = p->in_shape[p->perm[d]];
        stride[d] = in_stride[p->perm[d]];
    }
    for (i0 = 0; i0 < out_shape[0]; ++i0) {
        for (i1 = 0; i1 < out_shape[1]; ++i1) {
            for (i2 = 0; i2 < out_shape[2]; ++i2) {
                const int8_t *in = input + i0 * stride[0] + i1 * stride[1] + i2 * stride[2];
                for (i3 = 0; i3 < out_shape[3]; ++i3) {
                    *output++ = in[i3 * stride[3]];
                }
            }
        }
    }
    return MCF_OK;
}

int mcf_copy_tile_s8(const mcf_copy_tile_params *p, const int8_t *src, int8_t *dst)
{
    int32_t r;
    const size_t row_bytes = (size_t)p->tile_w * (size_t)p->channels;
    if (p->channels <= 0 || p->tile_h < 0 || p->tile_w < 0 || p->src_y < 0 || p->src_x < 0 ||
        p->dst_y < 0 || p->dst_x < 0 || p->src_x + p->tile_w > p->src_w || p->dst_x + p->tile_w > p->dst_w) {
        return MCF_ERR_ARG;
    }
    for (r = 0; r < p->tile_h; ++r) {
        memcpy(dst + ((p->dst_y + r) * p->dst_w + p->dst_x) * p->channels,
               src + ((p->src_y + r) * p->src_w + p->src_x) * p->channels, row_bytes);
    }
    return MCF_OK;
}
