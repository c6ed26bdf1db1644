/*
 * mcuforge runtime: portable kernels for int16 activations (TFLite 16x8).
 *
 * 16x8 models quantize activations to int16 symmetrically (zero point 0),
 * weights to int8 (symmetric, per output channel) and biases to int64.
 * Numerics equal TFLM's 16x8 reference kernels bit for bit:
 *   conv2d / depthwise / fully connected / transpose conv: int64 sums of
 *   filter * input, + int64 bias, then mcf_multiply_by_quantized_multiplier_64
 *   (TFLM MultiplyByQuantizedMultiplier(int64_t, ...): the Q31 multiplier
 *   reduced to Q15, one rounding shift), then the int16 clamp;
 *   add / sub: int8's arithmetic with left_shift 15 and the int16 clamp;
 *   leaky ReLU, QUANTIZE (int8 <-> int16, int16 -> int16): 32-bit
 *   MultiplyByQuantizedMultiplier as for int8.
 * Parameter structs follow kernels.h's conventions. Elementwise kernels
 * allow output == input (in place). C99, no malloc, no global state.
 */
#ifndef MCUFORGE_KERNELS_S16_H
#define MCUFORGE_KERNELS_S16_H

#include "mcuforge/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TFLM MultiplyByQuantizedMultiplier(int64_t x, int32_t multiplier, int shift)
 * (double-rounding build): |x| < 2^47, multiplier >= 0, -31 <= shift <= 7. */
int32_t mcf_multiply_by_quantized_multiplier_64(int64_t x, int32_t multiplier, int shift);

/* ---- convolutions (mcf_s16_conv.c) ---------------------------------------- */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_top, pad_left;
    int32_t act_min, act_max;  /* int16 clamp */
    int32_t per_channel;
    const int8_t *filter;      /* (out_c, k_h, k_w, in_c) */
    const int64_t *bias;       /* (out_c) or NULL */
    const int32_t *multiplier; /* (out_c) or (1) */
    const int32_t *shift;
} mcf_conv2d_s16_params;

int mcf_conv2d_s16(const mcf_conv2d_s16_params *p, const int16_t *input, int16_t *output);

typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c; /* out_c = in_c * depth_multiplier */
    int32_t depth_multiplier;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_top, pad_left;
    int32_t act_min, act_max;
    int32_t per_channel;
    const int8_t *filter;      /* (1, k_h, k_w, out_c) */
    const int64_t *bias;
    const int32_t *multiplier;
    const int32_t *shift;
} mcf_depthwise_conv2d_s16_params;

int mcf_depthwise_conv2d_s16(const mcf_depthwise_conv2d_s16_params *p, const int16_t *input, int16_t *output);

typedef struct {
    int32_t rows, in_features, out_features;
    int32_t act_min, act_max;
    int32_t per_channel;
    const int8_t *filter;      /* (out_features, in_features) */
    const int64_t *bias;
    const int32_t *multiplier;
    const int32_t *shift;
} mcf_fully_connected_s16_params;

int mcf_fully_connected_s16(const mcf_fully_connected_s16_params *p, const int16_t *input, int16_t *output);

/* Transposed convolution: each output value gathers the products TFLM
 * scatters (no scratch). Filter (out_c, k_h, k_w, in_c). */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t act_min, act_max;
    int32_t per_channel;
    const int8_t *filter;
    const int64_t *bias;
    const int32_t *multiplier;
    const int32_t *shift;
} mcf_transpose_conv_s16_params;

int mcf_transpose_conv_s16(const mcf_transpose_conv_s16_params *p, const int16_t *input, int16_t *output);

/* ---- elementwise (mcf_s16_elementwise.c) ------------------------------------ */
/* ADD / SUB: broadcast as mcf_sub_params (kernels.h). */
typedef struct {
    int32_t size, broadcast;
    int32_t out_shape[4], input1_stride[4], input2_stride[4];
    int32_t left_shift;  /* 15 */
    int32_t input1_offset, input1_multiplier, input1_shift;
    int32_t input2_offset, input2_multiplier, input2_shift;
    int32_t output_offset, output_multiplier, output_shift;
    int32_t act_min, act_max;
} mcf_add_sub_s16_params;

int mcf_add_s16(const mcf_add_sub_s16_params *p, const int16_t *input1, const int16_t *input2, int16_t *output);
int mcf_sub_s16(const mcf_add_sub_s16_params *p, const int16_t *input1, const int16_t *input2, int16_t *output);

typedef struct {
    int32_t size;
    int32_t input_zero_point, output_zero_point;
    int32_t multiplier_identity, shift_identity;  /* x >= 0 */
    int32_t multiplier_alpha, shift_alpha;        /* x < 0 */
} mcf_leaky_relu_s16_params;

/* MUL: out = clamp(output_offset + MultiplyByQuantizedMultiplier((a + input1_offset) * (b + input2_offset))). */
typedef struct {
    int32_t size, broadcast;
    int32_t out_shape[4], input1_stride[4], input2_stride[4];
    int32_t input1_offset, input2_offset, output_offset;
    int32_t multiplier, shift;
    int32_t act_min, act_max;
} mcf_mul_s16_params;

int mcf_mul_s16(const mcf_mul_s16_params *p, const int16_t *input1, const int16_t *input2, int16_t *output);

int mcf_leaky_relu_s16(const mcf_leaky_relu_s16_params *p, const int16_t *input, int16_t *output);

/* LOGISTIC / TANH (mcf_s16_sigmoid.c): TFLM's 16-bit kernels: the input
 * rescaled (x * input_multiplier + round) >> input_left_shift (multiplier 0:
 * 3 << input_left_shift, no shift), linear interpolation in a 256-entry
 * sigmoid table; output scale 2^-15. Output may equal input. */
typedef struct {
    int32_t size;
    int32_t input_multiplier, input_left_shift;
} mcf_sigmoid_s16_params;

int mcf_logistic_s16(const mcf_sigmoid_s16_params *p, const int16_t *input, int16_t *output);
int mcf_tanh_s16(const mcf_sigmoid_s16_params *p, const int16_t *input, int16_t *output);

/* SOFTMAX over the last axis (mcf_s16_softmax.c): TFLM's SoftmaxInt16 with the
 * exp and 1 / (1 + x) tables (513 entries each) the generator builds; output
 * scale 2^-15. Output may equal input. */
typedef struct {
    int32_t rows, cols;
    int32_t input_multiplier, input_left_shift;
    const int16_t *exp_lut;
    const int16_t *one_over_one_plus_x_lut;
} mcf_softmax_s16_params;

int mcf_softmax_s16(const mcf_softmax_s16_params *p, const int16_t *input, int16_t *output);

/* QUANTIZE: out = clamp(MultiplyByQuantizedMultiplier(x + input_offset) + output_offset). */
typedef struct {
    int32_t size;
    int32_t input_offset, output_offset;
    int32_t multiplier, shift;
} mcf_requantize_s16_params;

int mcf_requantize_s16(const mcf_requantize_s16_params *p, const int16_t *input, int16_t *output);
int mcf_requantize_s8_s16(const mcf_requantize_s16_params *p, const int8_t *input, int16_t *output);
int mcf_requantize_s16_s8(const mcf_requantize_s16_params *p, const int16_t *input, int8_t *output);

/* ---- data movement (mcf_s16_data.c) ------------------------------------------ */
int mcf_pad_s16(const mcf_pad_params *p, const int16_t *input, int16_t *output);
int mcf_strided_slice_s16(const mcf_strided_slice_params *p, const int16_t *input, int16_t *output);

typedef struct {
    int32_t num_inputs;
    int32_t outer;          /* product of the dimensions before the axis */
    const int32_t *inner;   /* per input: product of its dimensions from the axis on */
} mcf_concat_s16_params;

int mcf_concat_s16(const mcf_concat_s16_params *p, const int16_t *const *inputs, int16_t *output);

typedef struct {
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t act_min, act_max;
} mcf_pool_s16_params;

/* MAX_POOL_2D: the largest tap inside the input; AVERAGE_POOL_2D: the sum of
 * the taps inside the input divided by their count, rounded half away from 0. */
int mcf_max_pool_s16(const mcf_pool_s16_params *p, const int16_t *input, int16_t *output);
int mcf_avg_pool_s16(const mcf_pool_s16_params *p, const int16_t *input, int16_t *output);

/* ---- arm-dsp variants (mcf_dsp_s16.c, --kernels arm-dsp) --------------------
 * The portable structs; `filter` holds the int8 weights widened to int16 (the
 * generator's prepared_params_s16), in_c (in_features) even; a conv's kernel
 * row has fewer than 512 products. scratch is unused (NULL). */
int mcf_dsp_conv2d_s16(const mcf_conv2d_s16_params *p, const int16_t *input, int16_t *output, void *scratch);
int mcf_dsp_fully_connected_s16(const mcf_fully_connected_s16_params *p, const int16_t *input, int16_t *output,
                                void *scratch);

#ifdef __cplusplus
}
#endif

#endif /* MCUFORGE_KERNELS_S16_H */
