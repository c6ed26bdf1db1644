/*
 * mcuforge runtime: portable int8 kernels.
 *
 * Numerics are TFLite's int8 scheme and equal, bit for bit, to TFLM's
 * reference kernels (tensorflow/lite/kernels/internal/reference/...):
 * per-tensor asymmetric int8 activations, per-channel symmetric int8 weights,
 * int32 bias, requantization by a Q31 multiplier and a shift with
 * SaturatingRoundingDoublingHighMul followed by RoundingDivideByPOT.
 *
 * Layout: activations are channels last (H, W, C); conv filters are
 * (O, KH, KW, I); depthwise filters (1, KH, KW, C*M); fully-connected
 * filters (N, K).
 *
 * Conventions of every parameter struct:
 *   input_offset  = -input zero point   (added to each input value)
 *   output_offset = +output zero point
 *   act_min/act_max: the int8 clamp (fused ReLU/ReLU6 included)
 *   per_channel != 0: multiplier[c]/shift[c] per output channel,
 *                     else multiplier[0]/shift[0] for all channels
 *   shift > 0 is a left shift, shift < 0 a right shift (TFLite convention)
 *
 * Every kernel returns MCF_OK or an MCF_ERR_* status. The generated code
 * passes constant parameter structs, so checks are cheap and few.
 * C99, no malloc, no global state.
 */
#ifndef MCUFORGE_KERNELS_H
#define MCUFORGE_KERNELS_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    MCF_OK = 0,
    MCF_ERR_ARG = -1,
} mcf_status;

/* ---- fixed-point helpers (mcf_fixedpoint.c) ---------------------------- */
int32_t mcf_saturating_rounding_doubling_high_mul(int32_t a, int32_t b);
int32_t mcf_rounding_divide_by_pot(int32_t x, int exponent);
/* TFLM MultiplyByQuantizedMultiplier (double rounding, gemmlowp style). */
int32_t mcf_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift);

/* ---- conv2d (mcf_conv2d.c) --------------------------------------------- */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_top, pad_left; /* bottom/right padding follows from out_h/out_w */
    int32_t input_offset, output_offset;
    int32_t act_min, act_max;
    int32_t per_channel;
    const int8_t *filter;      /* (out_c, k_h, k_w, in_c) */
    const int32_t *bias;       /* (out_c) or NULL */
    const int32_t *multiplier; /* (out_c) or (1) */
    const int32_t *shift;      /* (out_c) or (1) */
    const int32_t *pw_requant; /* arm-dsp 6-pixel blocks only (kernels_arm_dsp.h), else NULL */
} mcf_conv2d_params;

int mcf_conv2d_s8(const mcf_conv2d_params *p, const int8_t *input, int8_t *output);

/* ---- depthwise conv2d (mcf_depthwise_conv2d.c) -------------------------- */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c; /* out_c = in_c * depth_multiplier */
    int32_t depth_multiplier;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_top, pad_left;
    int32_t input_offset, output_offset;
    int32_t act_min, act_max;
    int32_t per_channel;
    int32_t plane_transposed;  /* arm-dsp plane variant: the generator holds the map transposed (else 0) */
    const int8_t *filter;      /* (1, k_h, k_w, out_c) */
    const int32_t *bias;
    const int32_t *multiplier;
    const int32_t *shift;
} mcf_depthwise_conv2d_params;

int mcf_depthwise_conv2d_s8(const mcf_depthwise_conv2d_params *p,
                            const int8_t *input, int8_t *output);

/*
 * In place: `buffer` holds the input (in_h, in_w, in_c) and receives the
 * output (out_h, out_w, out_c) at the same address. Requires
 * depth_multiplier == 1 and out_h * out_w <= in_h * in_w. The input is
 * processed channel by channel through `scratch`, whose size in bytes is
 * given by mcf_depthwise_conv2d_s8_inplace_scratch_size().
 */
int32_t mcf_depthwise_conv2d_s8_inplace_scratch_size(const mcf_depthwise_conv2d_params *p);
int mcf_depthwise_conv2d_s8_inplace(const mcf_depthwise_conv2d_params *p,
                                    int8_t *buffer, int8_t *scratch);

/* ---- fully connected (mcf_fully_connected.c) ---------------------------- */
typedef struct {
    int32_t rows;          /* independent input rows (batch-like), usually 1 */
    int32_t in_features;   /* K */
    int32_t out_features;  /* N */
    int32_t input_offset, output_offset;
    int32_t act_min, act_max;
    int32_t per_channel;
    const int8_t *filter;  /* (N, K) */
    const int32_t *bias;   /* (N) or NULL */
    const int32_t *multiplier;
    const int32_t *shift;
    const int32_t *pw_requant; /* arm-dsp w6 only (kernels_arm_dsp.h), else NULL */
} mcf_fully_connected_params;

int mcf_fully_connected_s8(const mcf_fully_connected_params *p,
                           const int8_t *input, int8_t *output);

/* ---- elementwise add (mcf_add.c), TFLite int8 ADD ----------------------- */
typedef struct {
    int32_t size;
    int32_t left_shift;                 /* 20 for int8 */
    int32_t input1_offset, input1_multiplier, input1_shift;
    int32_t input2_offset, input2_multiplier, input2_shift;
    int32_t output_offset, output_multiplier, output_shift;
    int32_t act_min, act_max;
} mcf_add_params;

/* output may equal input1 or input2 (in place). */
int mcf_add_s8(const mcf_add_params *p, const int8_t *input1,
               const int8_t *input2, int8_t *output);

/* ---- pooling (mcf_pool.c) ----------------------------------------------- */
typedef struct {
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t act_min, act_max;
    /*
     * Average pooling only. requantize == 0: TFLite AVERAGE_POOL_2D (input
     * and output share scale and zero point): rounded average of the raw
     * values over the taps inside the input. requantize != 0: sum of
     * (x + input_offset) over the valid taps, MultiplyByQuantizedMultiplier
     * by multiplier/shift, rounded division by the tap count (as TFLM MEAN),
     * plus output_offset.
     */
    int32_t requantize;
    int32_t input_offset, output_offset;
    int32_t multiplier, shift;
} mcf_pool_params;

int mcf_avg_pool_s8(const mcf_pool_params *p, const int8_t *input, int8_t *output);
int mcf_max_pool_s8(const mcf_pool_params *p, const int8_t *input, int8_t *output);

/* ---- mean over the spatial axes (mcf_mean.c), TFLM int8 MEAN ------------ */
typedef struct {
    int32_t in_h, in_w, channels;       /* output is (1, 1, channels) */
    int32_t input_offset, output_offset;
    int32_t multiplier, shift;          /* input_scale / output_scale */
} mcf_mean_params;

int mcf_mean_s8(const mcf_mean_params *p, const int8_t *input, int8_t *output);

/* ---- softmax over the last axis (mcf_softmax.c), TFLite int8 ------------ */
typedef struct {
    int32_t rows, cols;
    int32_t input_multiplier, input_left_shift;
    int32_t diff_min;
    /* output scale is 1/256 and output zero point -128, as TFLite requires */
} mcf_softmax_params;

int mcf_softmax_s8(const mcf_softmax_params *p, const int8_t *input, int8_t *output);

/* ---- data movement (mcf_data.c) ----------------------------------------- */
/* Requantize (or copy when multiplier == 1<<30, shift == 1 and offsets
 * cancel) and clamp elementwise; output may equal input. */
typedef struct {
    int32_t size;
    int32_t input_offset, output_offset;
    int32_t multiplier, shift;
    int32_t act_min, act_max;
} mcf_requantize_params;

int mcf_requantize_s8(const mcf_requantize_params *p, const int8_t *input, int8_t *output);

/* Concatenation along an axis, viewed as outer x (sum of inner sizes).
 * Input i contributes inner[i] contiguous bytes per outer step and is
 * requantized with requant[i] (a copy when identity). */
typedef struct {
    int32_t num_inputs;
    int32_t outer;
    const int32_t *inner;                        /* (num_inputs) */
    const mcf_requantize_params *requant;        /* (num_inputs), size unused */
} mcf_concat_params;

int mcf_concat_s8(const mcf_concat_params *p, const int8_t *const *inputs, int8_t *output);

/* Constant padding of a (h, w, c) tensor. */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t pad_top, pad_bottom, pad_left, pad_right, pad_front, pad_back; /* front/back: channels */
    int32_t pad_value;
} mcf_pad_params;

int mcf_pad_s8(const mcf_pad_params *p, const int8_t *input, int8_t *output);

/* Transpose of a tensor of up to 4 dimensions (unused leading dims are 1). */
typedef struct {
    int32_t in_shape[4];
    int32_t perm[4];
} mcf_transpose_params;

int mcf_transpose_s8(const mcf_transpose_params *p, const int8_t *input, int8_t *output);

/* Copy a tile of tile_h x tile_w x channels from a patch buffer (rows of
 * src_w pixels, the tile starting at src_y, src_x) into a full tensor (rows
 * of dst_w pixels, at dst_y, dst_x). Patch-based schedules assemble the
 * output of their per-patch stage with it. */
typedef struct {
    int32_t channels;
    int32_t tile_h, tile_w;
    int32_t src_w, src_y, src_x;
    int32_t dst_w, dst_y, dst_x;
} mcf_copy_tile_params;

int mcf_copy_tile_s8(const mcf_copy_tile_params *p, const int8_t *src, int8_t *dst);

/* ---- on-device training (mcf_train.c) -----------------------------------
 * Gradients are int16 tensors g with an int32 exponent e: dL/dt = g * 2^e
 * in real units. Kernels accumulate in int64 and rescale their result to 14
 * significant bits; parameter updates multiply int64 gradient accumulators
 * by Q31 multipliers with shifts that fold the learning rate and
 * quantization-aware scaling. All integer: the same bits on every target.
 * A trained weight is a 16-bit master value in units of s_w / 256, kept as
 * two int8 parts: the filter the forward kernels read (the master rounded)
 * and the fraction rounding left over (master = filter * 256 + fraction;
 * the fractions start at 0). */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_top, pad_left;
    int32_t in_per_group, out_per_group;  /* grouped convolution: conv in_c/out_c, depthwise 1/multiplier */
    int32_t w_stride_o, w_stride_ky, w_stride_kx, w_stride_i;  /* filter index of (o, ky, kx, i in group) */
    int32_t input_offset;
    int32_t act_min, act_max;             /* the forward clamp: no gradient where the output sits on it */
    int32_t grad_multiplier, grad_shift;  /* input gradient: real = acc * grad_multiplier * 2^(grad_shift - 31) */
    int32_t trained_channels;             /* leading output channels whose weights are updated (0: none) */
    const int32_t *grad_scale;            /* (out_c) round(2^15 * s_w[o] / max s_w) */
    const int32_t *weight_multiplier;     /* (trained_channels) update per accumulator unit, or NULL */
    const int32_t *weight_shift;
    const int32_t *bias_multiplier;       /* (out_c), or NULL: bias frozen */
    const int32_t *bias_shift;
    int32_t momentum;                     /* SGD momentum in Q15 (0: plain SGD, no velocity) */
} mcf_train_conv_params;

/* dL/dinput of a conv2d / depthwise / fully-connected layer (before its update). */
int mcf_train_conv_input_grad(const mcf_train_conv_params *p, const int16_t *grad_out, int32_t grad_exp,
                              const int8_t *output, const int8_t *filter, int16_t *grad_in, int32_t *grad_in_exp);
/* Weight and bias gradients and their SGD update. delta == NULL: applied at
 * once (operator reordering); else the updates are stored in delta (weights,
 * then biases) for mcf_train_conv_apply at the end of the backward pass.
 * With momentum, velocity (laid out as delta) becomes round(momentum * velocity)
 * + update, and that is applied. */
int mcf_train_conv_update(const mcf_train_conv_params *p, const int16_t *grad_out, int32_t grad_exp,
                          const int8_t *output, const int8_t *input, int8_t *fraction, int8_t *filter,
                          int32_t *bias, int32_t *velocity, int32_t *delta);
int mcf_train_conv_apply(const mcf_train_conv_params *p, const int32_t *delta, int8_t *fraction, int8_t *filter,
                         int32_t *bias, int32_t *velocity);

typedef struct {
    int32_t size;
    int32_t act_min, act_max;
} mcf_train_mask_params;

/* Gradient through add / requantize: zero where the output sits on its clamp. */
int mcf_train_mask(const mcf_train_mask_params *p, const int16_t *grad, int32_t grad_exp, const int8_t *output,
                   int16_t *grad_out, int32_t *grad_out_exp);

typedef struct {
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t act_min, act_max;
    int32_t use_mask;  /* output != NULL: mask by the clamp */
} mcf_train_pool_params;

/* Average pooling (count excludes padding) and mean over height and width. */
int mcf_train_pool_backward(const mcf_train_pool_params *p, const int16_t *grad, int32_t grad_exp,
                            const int8_t *output, int16_t *grad_in, int32_t *grad_in_exp);

typedef struct {
    int32_t size;
} mcf_train_sum_params;

/* Sum of two gradients of the same tensor (a tensor read by two layers). */
int mcf_train_grad_sum(const mcf_train_sum_params *p, const int16_t *a, int32_t a_exp, const int16_t *b,
                       int32_t b_exp, int16_t *out, int32_t *out_exp);

typedef struct {
    int32_t classes;
} mcf_train_loss_params;

/* Cross-entropy of TFLite's int8 softmax output (scale 1/256, zero point
 * -128): gradient p - onehot in units of 2^-8. *label_prob = 256 * p[label]
 * (0..255); the generated code turns it into the loss with a table of
 * -ln(k / 256). */
int mcf_train_loss(const mcf_train_loss_params *p, const int8_t *probs, int32_t label, int16_t *grad,
                   int32_t *grad_exp, int32_t *label_prob);
/* ---- table lookup (mcf_lut.c): any int8 -> int8 elementwise op ---------- */
/* HARD_SWISH, LOGISTIC, TANH, LEAKY_RELU, a binary op with a scalar
 * constant...: the generator computes output = table[input + 128] for all
 * 256 inputs with TFLM's integer arithmetic. Output may equal input. */
typedef struct {
    int32_t size;
    const int8_t *table;   /* (256) */
} mcf_lut_params;

int mcf_lut_s8(const mcf_lut_params *p, const int8_t *input, int8_t *output);

/* ---- binary elementwise ops with broadcasting (mcf_mul.c, mcf_sub.c,
 * mcf_maximum_minimum.c, walk in mcf_broadcast.c) ----------------------------
 * broadcast == 0: inputs and output have `size` elements (output may equal
 * an input: in place). broadcast != 0: the output is out_shape (4-D, channels
 * last) and input k is read at sum(index[d] * input<k>_stride[d]), the stride
 * being 0 along an axis the input repeats (e.g. squeeze-and-excitation's
 * (1, H, W, C) * (1, 1, 1, C)). */
typedef struct {
    int32_t size, broadcast;
    int32_t out_shape[4], input1_stride[4], input2_stride[4];
    int32_t input1_offset, input2_offset, output_offset;
    int32_t multiplier, shift;          /* QuantizeMultiplier(s1 * s2 / s_out) */
    int32_t act_min, act_max;
} mcf_mul_params;

int mcf_mul_s8(const mcf_mul_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);

/* TFLite int8 SUB: ADD's arithmetic (left_shift 20, three multipliers <= 1). */
typedef struct {
    int32_t size, broadcast;
    int32_t out_shape[4], input1_stride[4], input2_stride[4];
    int32_t left_shift;
    int32_t input1_offset, input1_multiplier, input1_shift;
    int32_t input2_offset, input2_multiplier, input2_shift;
    int32_t output_offset, output_multiplier, output_shift;
    int32_t act_min, act_max;
} mcf_sub_params;

int mcf_sub_s8(const mcf_sub_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);

/* MAXIMUM / MINIMUM: each input requantized to the output's parameters
 * (a plain compare of raw values when identity, as TFLM), then compared. */
typedef struct {
    int32_t size, broadcast;
    int32_t out_shape[4], input1_stride[4], input2_stride[4];
    int32_t input1_offset, input1_multiplier, input1_shift;
    int32_t input2_offset, input2_multiplier, input2_shift;
    int32_t output_offset;
} mcf_maximum_minimum_params;

int mcf_maximum_s8(const mcf_maximum_minimum_params *p, const int8_t *input1, const int8_t *input2,
                   int8_t *output);
int mcf_minimum_s8(const mcf_maximum_minimum_params *p, const int8_t *input1, const int8_t *input2,
                   int8_t *output);

/* ---- strided slice (mcf_strided_slice.c), TFLite STRIDED_SLICE / ONNX Slice */
/* Output index i along axis d reads input index begin[d] + i * stride[d]
 * (stride may be negative); up to 4 dimensions, leading ones 1. */
typedef struct {
    int32_t in_shape[4];
    int32_t begin[4], stride[4];
    int32_t out_shape[4];
} mcf_strided_slice_params;

int mcf_strided_slice_s8(const mcf_strided_slice_params *p, const int8_t *input, int8_t *output);

/* ---- nearest-neighbour resize (mcf_resize_nearest.c) ---------------------- */
typedef struct {
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    const int32_t *row_index;  /* (out_h): input row of each output row */
    const int32_t *col_index;  /* (out_w): input column of each output column */
} mcf_resize_nearest_params;

int mcf_resize_nearest_s8(const mcf_resize_nearest_params *p, const int8_t *input, int8_t *output);

/* ---- transposed convolution (mcf_transpose_conv.c), TFLite TRANSPOSE_CONV -- */
/* Input pixel (iy, ix) tap (ky, kx) lands on output (iy * stride_h - pad_top
 * + ky, ix * stride_w - pad_left + kx); outputs outside are dropped. */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t input_offset, output_offset;
    int32_t act_min, act_max;
    int32_t per_channel;
    const int8_t *filter;      /* (out_c, k_h, k_w, in_c) */
    const int32_t *bias;       /* (out_c) or NULL */
    const int32_t *multiplier;
    const int32_t *shift;
} mcf_transpose_conv_params;

int mcf_transpose_conv_s8(const mcf_transpose_conv_params *p, const int8_t *input, int8_t *output);

/* ---- binary ops with broadcasting or a constant operand (mcf_binary.c) ---- */
/* kind: MCF_BINARY_ADD / _SUB (TFLite int8 ADD / SUB: left_shift 20, three
 * multipliers <= 1), _MUL (TFLite int8 MUL: output_multiplier/output_shift
 * of s1 * s2 / s_out), _PRELU (TFLite int8 PRELU, input2 = alpha:
 * x >= 0 ? x * input1_multiplier : x * alpha * output_multiplier, offsets
 * applied first). Broadcasting as mcf_mul_params. mcf_binary_const_s8 reads
 * one operand from `constant` (flash): input1 when constant_first. */
#define MCF_BINARY_ADD 0
#define MCF_BINARY_SUB 1
#define MCF_BINARY_MUL 2
#define MCF_BINARY_PRELU 3
typedef struct {
    int32_t kind, constant_first;
    int32_t size, broadcast;
    int32_t out_shape[4], input1_stride[4], input2_stride[4];
    int32_t left_shift;
    int32_t input1_offset, input1_multiplier, input1_shift;
    int32_t input2_offset, input2_multiplier, input2_shift;
    int32_t output_offset, output_multiplier, output_shift;
    int32_t act_min, act_max;
    const int8_t *constant;
} mcf_binary_params;

int mcf_binary_s8(const mcf_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
int mcf_binary_const_s8(const mcf_binary_params *p, const int8_t *input, int8_t *output);

/* ---- reductions over any axes (mcf_reduce.c) ------------------------------- */
/* The input has in_shape (4-D, channels last, leading 1s for lower ranks);
 * the axes d with reduce[d] != 0 are reduced, the output keeps the others in
 * order. kind MCF_REDUCE_MEAN: TFLM int8 MEAN (QuantizedMeanOrSum, as
 * mcf_mean_s8 with n = the reduced element count); MCF_REDUCE_MAX: TFLM int8
 * REDUCE_MAX (raw values, input and output share scale and zero point). */
#define MCF_REDUCE_MEAN 0
#define MCF_REDUCE_MAX 1
typedef struct {
    int32_t kind;
    int32_t in_shape[4], reduce[4];
    int32_t input_offset, output_offset;
    int32_t multiplier, shift;          /* input_scale / output_scale (mean) */
} mcf_reduce_params;

int mcf_reduce_s8(const mcf_reduce_params *p, const int8_t *input, int8_t *output);

/* ---- tile (mcf_tile.c), TFLite TILE: the input repeated multiples[d] times ---- */
typedef struct {
    int32_t in_shape[4], multiples[4];   /* 4-D, channels last, leading 1s */
} mcf_tile_params;

int mcf_tile_s8(const mcf_tile_params *p, const int8_t *input, int8_t *output);

/* A trained state as a record to keep across resets (mcf_state.c): header (magic, version, the
 * state's 32-byte identity <NAME>_TRAIN_STATE_SHA256, size, generation, CRC-32) + the state. */
#define MCF_STATE_HEADER_SIZE 52
#define MCF_STATE_RECORD_SIZE(state_size) (MCF_STATE_HEADER_SIZE + (state_size))
enum {
    MCF_STATE_OK = 0,
    MCF_STATE_ERR_SIZE = -1,    /* record buffer too small, or a state of another size */
    MCF_STATE_ERR_MAGIC = -2,   /* not a state record (e.g. erased flash) */
    MCF_STATE_ERR_VERSION = -3, /* another record format */
    MCF_STATE_ERR_CRC = -4,     /* torn or corrupted */
    MCF_STATE_ERR_MODEL = -5    /* the state of another model or build */
};
uint32_t mcf_crc32(uint32_t crc, const uint8_t *data, uint32_t size);
/* Bytes written (MCF_STATE_RECORD_SIZE(state_size)) or MCF_STATE_ERR_SIZE. `generation` numbers
 * the saves (1, 2, ...), so that of two slots the newer can be told (mcf_state_newest). */
int32_t mcf_state_pack(const uint8_t identity[32], uint32_t generation, const void *state, uint32_t state_size,
                       uint8_t *record, uint32_t record_size);
/* MCF_STATE_OK when `record` is a whole, intact record of this identity and size. */
int mcf_state_check(const uint8_t identity[32], const uint8_t *record, uint32_t record_size, uint32_t state_size);
/* Checks, then copies the state; writes nothing to `state` unless it returns MCF_STATE_OK. */
int mcf_state_unpack(const uint8_t identity[32], const uint8_t *record, uint32_t record_size, void *state,
                     uint32_t state_size);
/* The generation of a record that mcf_state_check() accepted. */
uint32_t mcf_state_generation(const uint8_t *record);
/* Two (or more) slots: the index of the valid record with the newest generation, or -1 when
 * none is valid; status[i] is mcf_state_check()'s verdict on slot i (a NULL record: MAGIC).
 * Write the next save (generation + 1) over any other slot: the newest stays intact. */
int mcf_state_newest(const uint8_t identity[32], const uint8_t *const records[], const uint32_t record_sizes[],
                     int count, uint32_t state_size, int status[]);
const char *mcf_state_error(int status);

#ifdef __cplusplus
}
#endif

#endif /* MCUFORGE_KERNELS_H */
