/*
 * mcuforge runtime: the arm-dsp kernel set (Cortex-M with the DSP extension:
 * M4, M7, M33, M55; plain C with the same results elsewhere).
 *
 * The kernels take the portable parameter structs (kernels.h), with constant
 * operands the generator has prepared for them (mcuforge.codegen.arm_dsp):
 *
 * mcf_dsp_conv2d_s8, mcf_dsp_conv2d_1x1_s8 (k_h = k_w = 1),
 * mcf_dsp_fully_connected_s8 (K = k_h * k_w * in_c or in_features, Kp = K
 * rounded up to a multiple of 4):
 *   filter   32-bit words of 4 int8 weights of one output channel, products
 *            k..k+3 in order, zero beyond K; output channels in pairs, the
 *            words of the two channels interleaved (a last odd channel on its
 *            own);
 *   bias     bias[oc] + input_offset * sum_k filter[oc][k] (never NULL), so
 *            the kernel multiplies raw inputs and pads with the zero point;
 *   multiplier, shift: one per output channel.
 *   pw_requant (mcf_dsp_conv2d_1x1_s8, and mcf_dsp_conv2d_s8 with 6 columns;
 *            NULL for the other kernels): when the
 *            requantization is MCF_DSP_FAST_REQUANT with act_min = -128,
 *            act_max = 127 and every shift in [-22, -1], three words per
 *            output channel of a pair, the pairs' first channels, then their
 *            second ones: multiplier, e = -shift and output_offset * 2^e +
 *            2^(e-1); the 6-pixel blocks requantize from them. NULL: those
 *            blocks run on Cortex-M for the other layers only.
 *   scratch: mcf_dsp_*_scratch_size() bytes: int16 columns of Kp, two (none
 *            for a fully connected layer with one row), six when the layer
 *            has at least 6 output pixels and is 1x1, or k x k with 6
 *            columns of at most 2048 bytes (the 6-pixel blocks).
 *
 * mcf_dsp_depthwise_conv2d_s8 and _inplace (depth multiplier 1, in_c a
 * multiple of 4):
 *   filter   per channel, per kernel row, 32-bit words of int16 pairs
 *            (tap 2i, tap 2i+1), an odd row's last pair padded with 0;
 *   bias     never NULL; multiplier, shift one per channel;
 *   scratch: mcf_dsp_depthwise_conv2d_s8[_inplace]_scratch_size() bytes, a
 *            ring of input rows, 4 channels at a time, each an int16 row with
 *            the input offset added, padded with 0 (plus a row of zeros for
 *            a 3x3 window with stride 1 or 2); in place as
 *            mcf_depthwise_conv2d_s8_inplace.
 *
 * Every kernel: per_channel == MCF_DSP_FAST_REQUANT says the generator has
 * proved that every accumulator stays below 2^30 in magnitude and every shift
 * is in [-31, -1], which allows a 5-instruction requantization (SMMULR) with
 * TFLM's exact result; any other value: the general requantization.
 *
 * Outputs equal the portable kernels' (and TFLM's) bit for bit.
 */
#ifndef MCUFORGE_KERNELS_ARM_DSP_H
#define MCUFORGE_KERNELS_ARM_DSP_H

#include "mcuforge/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MCF_DSP_FAST_REQUANT 2

int32_t mcf_dsp_conv2d_s8_scratch_size(const mcf_conv2d_params *p);
int mcf_dsp_conv2d_s8(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
/* The same without scratch for a layer whose input dies with it: the
 * 6-pixel blocks' columns in the output's last bytes, then in the input's
 * first ones once no window reads them (the input is overwritten; input and
 * output word-aligned; the generator checks the shape): */
int32_t mcf_dsp_conv2d_s8_reuse_scratch_size(const mcf_conv2d_params *p);
int mcf_dsp_conv2d_s8_reuse(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
/* The same in blocks of 4 output pixels x 2 channels (scratch: 4 columns): */
int32_t mcf_dsp_conv2d_s8_pw4_scratch_size(const mcf_conv2d_params *p);
int mcf_dsp_conv2d_s8_pw4(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
int32_t mcf_dsp_conv2d_1x1_s8_scratch_size(const mcf_conv2d_params *p);
int mcf_dsp_conv2d_1x1_s8(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
/* The same without scratch (scratch may be NULL): each output pixel as one
 * fully connected row read from the int8 input (a little slower): */
int32_t mcf_dsp_conv2d_1x1_s8_rows_scratch_size(const mcf_conv2d_params *p);
int mcf_dsp_conv2d_1x1_s8_rows(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
/* The same in blocks of 4 output pixels x 2 channels (scratch: 4 columns): */
int32_t mcf_dsp_conv2d_1x1_s8_pw4_scratch_size(const mcf_conv2d_params *p);
int mcf_dsp_conv2d_1x1_s8_pw4(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
/* the pw4 variants on the wide layout: per channel pair and group of 4 products, a's (w0, w2), b's (w0, w2),
 * a's (w1, w3), b's (w1, w3) as int16 pairs (low half first); a last odd channel's (w0, w2), (w1, w3) */
int32_t mcf_dsp_conv2d_1x1_s8_pw4w_scratch_size(const mcf_conv2d_params *p);
int mcf_dsp_conv2d_1x1_s8_pw4w(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
int32_t mcf_dsp_conv2d_s8_pw4w_scratch_size(const mcf_conv2d_params *p);
int mcf_dsp_conv2d_s8_pw4w(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
int32_t mcf_dsp_conv2d_s8_reusew_scratch_size(const mcf_conv2d_params *p);
int mcf_dsp_conv2d_s8_reusew(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
/* The blocks without scratch, the input left as it is: their columns in the output's last bytes (output
 * word-aligned, never the input), the pixels after them as rows (a 1x1 layer's read in place, a k x k
 * window of K <= 64 products gathered on the stack); on the int8 words and on the wide layout: */
int32_t mcf_dsp_conv2d_s8_tail_scratch_size(const mcf_conv2d_params *p);
int mcf_dsp_conv2d_s8_tail(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
int32_t mcf_dsp_conv2d_s8_tailw_scratch_size(const mcf_conv2d_params *p);
int mcf_dsp_conv2d_s8_tailw(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch);

int32_t mcf_dsp_fully_connected_s8_scratch_size(const mcf_fully_connected_params *p);
int mcf_dsp_fully_connected_s8(const mcf_fully_connected_params *p, const int8_t *input, int8_t *output,
                               int8_t *scratch);
/* k x k without im2col (mcf_dsp_matmul.c): each output row's window of input rows widened once into the
 * scratch, the filter widened as pw4w with its products in (kx, ky, c) order; dilation 1, in_c a multiple of
 * 4, out_c even, the records */
int32_t mcf_dsp_conv2d_s8_winw_scratch_size(const mcf_conv2d_params *p);
int mcf_dsp_conv2d_s8_winw(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
/* winw without scratch where the input dies with the layer: the window in the output's last bytes, then in the
 * input's dead first rows (the input is overwritten) */
int32_t mcf_dsp_conv2d_s8_winreusew_scratch_size(const mcf_conv2d_params *p);
int mcf_dsp_conv2d_s8_winreusew(const mcf_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
/* average pooling, 4 channels per SIMD step (mcf_dsp_pool.c): channels a multiple of 4, windows of at most
 * 255 taps; no scratch (the argument is unused) */
int32_t mcf_dsp_avg_pool_s8_scratch_size(const mcf_pool_params *p);
int mcf_dsp_avg_pool_s8(const mcf_pool_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
/* table lookup (mcf_dsp_elementwise.c), 4 values a word; output may equal input; no scratch */
int32_t mcf_dsp_lut_s8_scratch_size(const mcf_lut_params *p);
int mcf_dsp_lut_s8(const mcf_lut_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
/* multiply with broadcasting (mcf_dsp_elementwise.c): the innermost axis one loop per requantization mode;
 * multiplier >= 0 (as quantize_multiplier gives); output may equal input1 when broadcast == 0; no scratch */
int32_t mcf_dsp_mul_s8_scratch_size(const mcf_mul_params *p);
int mcf_dsp_mul_s8(const mcf_mul_params *p, const int8_t *input1, const int8_t *input2, int8_t *output,
                   int8_t *scratch);
/* subtract with broadcasting from the generator's tables, mcf_dsp_add_s8's layout with input2's term negated */
int mcf_dsp_sub_s8(const mcf_sub_params *p, const int8_t *input1, const int8_t *input2, int8_t *output,
                   const int32_t *tables);
/* maximum / minimum with broadcasting from the generator's tables: tables[x + 128] input1's value x in the
 * output's quantization, tables[256 + x + 128] input2's */
int mcf_dsp_maximum_s8(const mcf_maximum_minimum_params *p, const int8_t *input1, const int8_t *input2,
                       int8_t *output, const int8_t *tables);
int mcf_dsp_minimum_s8(const mcf_maximum_minimum_params *p, const int8_t *input1, const int8_t *input2,
                       int8_t *output, const int8_t *tables);
/* softmax (mcf_dsp_softmax.c, the portable kernel's rows in mcf_softmax.h): exp of every difference from the row's
 * maximum from the generator's table[-diff] (256 words, Q0.31; 0 below diff_min) instead of computed twice */
int mcf_dsp_softmax_s8(const mcf_softmax_params *p, const int8_t *input, int8_t *output, const int32_t *table);
/* transposed convolution (mcf_dsp_transpose_conv.c): per output pixel its taps found once, then 4 output
 * channels x 4 input channels a step (SXTAB16 adds the input offset, SMLAD); at most 16 taps of a phase
 * (ceil(k_h / stride_h) x ceil(k_w / stride_w)); the portable struct with multiplier (>= 0) and shift per
 * channel and per_channel the requantization mode (MCF_DSP_FAST_REQUANT when proved); no scratch */
int32_t mcf_dsp_transpose_conv_s8_scratch_size(const mcf_transpose_conv_params *p);
int mcf_dsp_transpose_conv_s8(const mcf_transpose_conv_params *p, const int8_t *input, int8_t *output,
                              int8_t *scratch);
/* one input row, the filter widened to int16 offline (pack_fc_wide): N padded with zero rows to blocks of 6
 * output rows, per block and group of 4 products the rows' (w0, w2) pairs, then their (w1, w3); bias padded
 * likewise. pw_requant: under the same conditions as the 1x1 kernel's, the records of every output row in
 * order (3 words each, padded likewise), else NULL; with them and K a multiple of 4, the layer runs in
 * assembly from bias to output on Cortex-M. */
int32_t mcf_dsp_fully_connected_s8_w6_scratch_size(const mcf_fully_connected_params *p);
int mcf_dsp_fully_connected_s8_w6(const mcf_fully_connected_params *p, const int8_t *input, int8_t *output,
                                  int8_t *scratch);

int32_t mcf_dsp_depthwise_conv2d_s8_scratch_size(const mcf_depthwise_conv2d_params *p);
int mcf_dsp_depthwise_conv2d_s8(const mcf_depthwise_conv2d_params *p, const int8_t *input, int8_t *output,
                                int8_t *scratch);
int32_t mcf_dsp_depthwise_conv2d_s8_inplace_scratch_size(const mcf_depthwise_conv2d_params *p);
int mcf_dsp_depthwise_conv2d_s8_inplace(const mcf_depthwise_conv2d_params *p, int8_t *buffer, int8_t *scratch);
/* The same with the whole padded input plane of 4 channels in the scratch
 * (more scratch than the ring, fewer cycles; a 3x3 window with stride 1 or 2
 * along the rows and padding >= 0, else the ring kernel): */
int32_t mcf_dsp_depthwise_conv2d_s8_plane_scratch_size(const mcf_depthwise_conv2d_params *p);
int mcf_dsp_depthwise_conv2d_s8_plane(const mcf_depthwise_conv2d_params *p, const int8_t *input, int8_t *output,
                                      int8_t *scratch);
int32_t mcf_dsp_depthwise_conv2d_s8_inplace_plane_scratch_size(const mcf_depthwise_conv2d_params *p);
int mcf_dsp_depthwise_conv2d_s8_inplace_plane(const mcf_depthwise_conv2d_params *p, int8_t *buffer,
                                              int8_t *scratch);

/* Elementwise add (mcf_dsp_add.c) from the generator's tables: each input's
 * term by int8 value (256 words each) and the sum's requantization mode
 * (0 general, 1 fast, 2 fast with the clamp [-128, 127]). output may equal
 * input1 or input2. */
#define MCF_DSP_ADD_MODE 512
#define MCF_DSP_ADD_TABLE_SIZE 513
int mcf_dsp_add_s8(const mcf_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output,
                   const int32_t *tables);

#ifdef __cplusplus
}
#endif

#endif /* MCUFORGE_KERNELS_ARM_DSP_H */
