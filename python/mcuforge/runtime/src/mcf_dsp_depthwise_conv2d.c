/*
 * mcuforge runtime, arm-dsp kernel set: int8 depthwise convolution with depth
 * multiplier 1, bit-exact with TFLM's reference kernel, normal and in place.
 *
 * Both go through a ring of input rows in the scratch (the in-place kernel's
 * ring, mcf_depthwise_conv2d.c; mcf_ring.h), four channels at a time: each
 * ring row holds one int16 row per channel, the input offset already added
 * (one 32-bit load of 4 channels, two SXTAB16) and padded left and right
 * with 0 (the zero point plus the offset), so every horizontal tap is a
 * plain load. In place, output pixel n of channels c..c+3 goes where input
 * pixel n was, once the rows it destroys are in the ring.
 *
 * Along a channel's int16 row, one 32-bit load brings two horizontal
 * neighbours, so SMLAD takes two taps at once: the generator stores each
 * channel's filter row by row as int16 pairs (tap 2i, tap 2i+1), the last
 * pair of an odd row padded with 0. A 3x3 window with stride 1 or 2 makes
 * two output pixels per step: per kernel row 3 loads, 2 SMLAD and 2
 * SMLAxy for 6 multiply-accumulates.
 */
#include "mcuforge/kernels.h"
#include "mcuforge/kernels_arm_dsp.h"
#include "mcf_dsp.h"
#include "mcf_ring.h"
#include "mcf_window.h"

/* What the inner loops read, copied from the parameters into a local that
 * the int8 output stores cannot alias (so nothing is reloaded per pixel). */
typedef struct {
    int32_t output_offset, act_min, act_max;
    int32_t out_w, channels, k_w, stride_w, dilation_w, pairs; /* pairs: words per kernel row */
} dw_ctx;

/* Two int16 values at p (any alignment: one LDR on Cortex-M4/M7). */
MCF_INLINE int32_t pair(const int16_t *p)
{
    return (int32_t)mcf_read32(p);
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__) && defined(__thumb2__) && defined(__OPTIMIZE__)
#define MCF_DSP_ASM 1
/*
 * The 3x3 row of one channel in assembly, two output pixels per step, for a
 * layer in mode MCF_DSP_FAST_SAT with every shift in [-22, -1] (the
 * requantization of the 1x1 kernel, mcf_dsp_out_record: 6 instructions per
 * output). The job's first 12 words become the frame (LDM reloads the
 * weights each step, so that 3 row pointers, the output pointer, 2
 * accumulators and 3 inputs stay in registers): per step 9 loads, 6 SMLAD
 * and 6 SMLAxy for 18 multiply-accumulates, then 12 instructions of
 * requantization and stores; then a last odd pixel when `odd` says so.
 * out_end - out: a multiple of 2 * step. (The plane variant takes every
 * output row of a channel group at once, 4 pixels a step: mcf_dsp_dw3q_s1,
 * _s2 below.)
 */
typedef struct {
    int32_t w0, w1, w2;    /* 0: kernel row k's taps 0, 1 (int16 pair) */
    int32_t wc01, wc2;     /* 12: tap 2 of rows 0 (bottom) and 1 (top); 16: of row 2 (bottom) */
    int32_t bias;          /* 20 */
    int32_t record[3];     /* 24: m, e, rounding (mcf_dsp_record) */
    int32_t step;          /* 36: output channels */
    int8_t *out_end;       /* 40: past the pixel pairs */
    int32_t odd;           /* 44: 1: one more pixel after them */
    const int16_t *r0, *r1, *r2; /* 48: the window's ring rows (int16, the offset added) */
    int8_t *out;           /* 60 */
} mcf_dw3_job;

void mcf_dsp_dw3_s1(const mcf_dw3_job *job);
void mcf_dsp_dw3_s2(const mcf_dw3_job *job);
void mcf_dsp_dw3_s1_lo(const mcf_dw3_job *job);
void mcf_dsp_dw3_s2_lo(const mcf_dw3_job *job);
#define MCF_DW3_ENTRY(name)                                                    \
    MCF_ASM_FUNCTION(name)                                                    \
    "ldmia r0!, {r1-r12}\n\t"                                                 \
    "push {r1-r12}\n\t"                                                       \
    "ldm r0, {r9-r12}\n\t"                                                    \
    "ldr r2, [sp, #40]\n\t"                                                   \
    "cmp r12, r2\n\t"             /* no pair */                              \
    "beq 8f\n"                                                                \
    "1:\n\t"                                                                  \
    "ldm sp, {r4-r8}\n\t"           /* weights */                             \
    "ldr r0, [sp, #20]\n\t"         /* both accumulators from the bias */    \
    "mov r1, r0\n\t"
/* Kernel row at rp, weights w (taps 0, 1) and half h of wc (tap 2). */
#define MCF_DW3_ROW_S1(rp, w, wc, h)                                           \
    "ldr r2, [" rp ", #2]\n\t"      /* x1 x2 */                               \
    "ldr r3, [" rp ", #4]\n\t"      /* x2 x3 */                               \
    "ldr lr, [" rp "], #4\n\t"      /* x0 x1 */                               \
    "smlad r0, " w ", lr, r0\n\t"                                             \
    "smlad r1, " w ", r2, r1\n\t"                                             \
    "smlab" h " r0, r3, " wc ", r0\n\t"                                       \
    "smlat" h " r1, r3, " wc ", r1\n\t"
#define MCF_DW3_ROW_S2(rp, w, wc, h)                                           \
    "ldr r3, [" rp ", #4]\n\t"      /* x2 x3 */                               \
    "ldrsh r2, [" rp ", #8]\n\t"    /* x4 */                                  \
    "ldr lr, [" rp "], #8\n\t"      /* x0 x1 */                               \
    "smlad r0, " w ", lr, r0\n\t"                                             \
    "smlad r1, " w ", r3, r1\n\t"                                             \
    "smlab" h " r0, r3, " wc ", r0\n\t"                                       \
    "smlab" h " r1, r2, " wc ", r1\n\t"
#define MCF_DW3_OUT(acc, addr) MCF_ASM_REQUANT(acc, acc, "r2", "r4", "r5", "r6") "strb " acc ", " addr "\n\t"
/* The same when output_offset = -128 (mcf_dsp_out_record_lo). */
#define MCF_DW3_OUT_LO(acc, addr) MCF_ASM_REQUANT_LO(acc, acc, "r4", "r5", "r6") "strb " acc ", " addr "\n\t"
/* One output pixel's kernel row at rp (taps 0-2). */
#define MCF_DW3_ROW_1(rp, w, wc, h)                                            \
    "ldr lr, [" rp "]\n\t"                                                   \
    "ldrsh r3, [" rp ", #4]\n\t"                                             \
    "smlad r0, " w ", lr, r0\n\t"                                             \
    "smlab" h " r0, r3, " wc ", r0\n\t"
#define MCF_DW3_EXIT(name, OUT)                                                   \
    "add r2, sp, #24\n\t"                                                     \
    "ldm r2, {r4-r7}\n\t"           /* m, e, rounding, step */                \
    OUT("r0", "[r12]")                                                        \
    OUT("r1", "[r12, r7]")                                                    \
    "add r12, r12, r7, lsl #1\n\t"                                            \
    "ldr r2, [sp, #40]\n\t"                                                   \
    "cmp r12, r2\n\t"                                                         \
    "bne 1b\n"                                                                \
    "8:\n\t"                                                                  \
    "ldr r2, [sp, #44]\n\t"                                                   \
    "cbz r2, 9f\n\t"                                                          \
    "ldm sp, {r4-r8}\n\t"                                                     \
    "ldr r0, [sp, #20]\n\t"                                                   \
    MCF_DW3_ROW_1("r9", "r4", "r7", "b")                                      \
    MCF_DW3_ROW_1("r10", "r5", "r7", "t")                                     \
    MCF_DW3_ROW_1("r11", "r6", "r8", "b")                                     \
    "add r2, sp, #24\n\t"                                                     \
    "ldm r2, {r4-r6}\n\t"                                                     \
    OUT("r0", "[r12]")                                                        \
    "9:\n\t"                                                                  \
    "add sp, sp, #48\n\t"                                                    \
    "pop {r4-r11, pc}\n\t"                                                    \
    ".size " name ", .-" name "\n\t"                                          \
    ".popsection"
/* The 3x3 row function `name`: kernel rows by ROW (stride), outputs by OUT. */
#define MCF_DW3_FUNCTION(name, ROW, OUT)                                        \
    MCF_DW3_ENTRY(name)                                                       \
    ROW("r9", "r4", "r7", "b")                                                \
    ROW("r10", "r5", "r7", "t")                                               \
    ROW("r11", "r6", "r8", "b")                                               \
    MCF_DW3_EXIT(name, OUT)
/* one output row (the ring) */
__asm__(MCF_DW3_FUNCTION("mcf_dsp_dw3_s1", MCF_DW3_ROW_S1, MCF_DW3_OUT));
__asm__(MCF_DW3_FUNCTION("mcf_dsp_dw3_s2", MCF_DW3_ROW_S2, MCF_DW3_OUT));
__asm__(MCF_DW3_FUNCTION("mcf_dsp_dw3_s1_lo", MCF_DW3_ROW_S1, MCF_DW3_OUT_LO));
__asm__(MCF_DW3_FUNCTION("mcf_dsp_dw3_s2_lo", MCF_DW3_ROW_S2, MCF_DW3_OUT_LO));
/*
 * The plane's stride-1 rows four output pixels a step (mcf_dsp_dw3q_s1,
 * _lo): one pointer walks the 3 kernel rows (krow bytes apart, word-aligned:
 * a step starts 8 bytes after the last). Per kernel row one LDM brings
 * x0x1, x2x3, x4x5 and one LDRD the row's weights w01 = (w0, w1) and
 * w12 = (w1, w2); the pixels at odd offsets take the halves: pixel 0
 * x0x1.w01 + x2 w2, pixel 1 x1 w0 + x2x3.w12, pixel 2 x2x3.w01 + x4 w2,
 * pixel 3 x3 w0 + x4x5.w12 (4 SMLAD and 4 SMLAxy for 12 multiply-
 * accumulates; the first kernel row adds to the bias). Then the record
 * (m, e, rounding, step) and 4 requantizations. A row's last out_w % 4
 * pixels (`odd` of the job): two in one step, then one. Every output row of
 * the job's channels (a group of 4) in one call, channel after channel.
 * The stride-2 rows (mcf_dsp_dw3q_s2, _lo) the same way, a step 16 bytes
 * after the last: per kernel row one LDM of x0x1 .. x6x7, an LDRSH of x8 and
 * two loads of the row's weights, pixel j x(2j)x(2j+1).w01 + x(2j+2) w2 (4
 * SMLAD and 4 SMLABx for 12 multiply-accumulates, 17 cycles against 34 in
 * the 2-pixel steps of the ring's rows).
 * Frame: 0-32 the channel's words (w0, w1, w2, wc01, wc2, bias, m, e,
 * rounding), 36 step, 40 the span, 44 the pixels after it, 48 the row's
 * plane pointer, 52 its output, 56 rows left, 60 krow, 64 orow, 68
 * out_row, 72 the next channel's words, 76-96 per kernel row w01, w12
 * (stride 1), 100 channels left, 104 the channel's first plane row, 108 its
 * first output, 112 plane_step, 116 rows, 120 the row's end of whole steps.
 */
typedef struct {
    const int32_t *ch;      /* 0: per channel w0, w1, w2, wc01, wc2 (as mcf_dw3_job), bias, m, e, rounding */
    int32_t channels;       /* 4: channels of the call, >= 1 */
    int32_t step;           /* 8: output bytes from a pixel to the next along a row */
    int32_t span;           /* 12: output bytes of a row's whole steps (out_w & ~3 pixels) */
    int32_t odd;            /* 16: the row's pixels after them */
    const int16_t *r0;      /* 20: the first channel's first kernel row (word-aligned) */
    int8_t *out;            /* 24: the first channel's first output */
    int32_t rows;           /* 28: output rows */
    int32_t krow, orow;     /* 32, 36: bytes from a kernel row to the next, from an output row's to the next's */
    int32_t out_row;        /* 40: output bytes from a row to the next */
    int32_t plane_step;     /* 44: bytes from a channel's plane rows to the next channel's (its output: 1 on) */
} mcf_dw3q_job;

/* Kernel row at r9 (weights at frame offset `at`) for the 4 pixels into
 * r0-r3, which start from a0-a3. */
#define MCF_DW3Q_ROW(at, a0, a1, a2, a3)                                       \
    "ldm r9, {r6, r7, r8}\n\t"     /* x0x1 x2x3 x4x5 */                      \
    "ldrd r4, r5, [sp, #" at "]\n\t" /* w01 w12 */                           \
    "smlad r0, r6, r4, " a0 "\n\t"                                            \
    "smlabt r0, r7, r5, r0\n\t"                                               \
    "smlatb r1, r6, r4, " a1 "\n\t"                                           \
    "smlad r1, r7, r5, r1\n\t"                                                \
    "smlad r2, r7, r4, " a2 "\n\t"                                            \
    "smlabt r2, r8, r5, r2\n\t"                                               \
    "smlatb r3, r7, r4, " a3 "\n\t"                                           \
    "smlad r3, r8, r5, r3\n\t"
/* the same for two pixels */
#define MCF_DW3Q_PAIR(w, wc, h)                                                 \
    "ldr r11, [r9]\n\t"                                                        \
    "ldr r12, [r9, #2]\n\t"                                                    \
    "smlad r0, " w ", r11, r0\n\t"                                            \
    "smlad r1, " w ", r12, r1\n\t"                                            \
    "ldr r11, [r9, #4]\n\t"                                                    \
    "smlab" h " r0, r11, " wc ", r0\n\t"                                      \
    "smlat" h " r1, r11, " wc ", r1\n\t"
/* The window of 4 pixels at stride 1 (r9: its first kernel row, r10 krow),
 * r9 then 8 bytes on, and the record (m, e, rounding, step) into r4-r7. */
#define MCF_DW3Q_STEP_S1                                                        \
    "ldr r12, [sp, #20]\n\t"       /* the bias */                           \
    MCF_DW3Q_ROW("76", "r12", "r12", "r12", "r12")                            \
    "add r9, r9, r10\n\t"                                                     \
    MCF_DW3Q_ROW("84", "r0", "r1", "r2", "r3")                                \
    "add r9, r9, r10\n\t"                                                     \
    MCF_DW3Q_ROW("92", "r0", "r1", "r2", "r3")                                \
    "sub r9, r9, r10, lsl #1\n\t"                                             \
    "add r9, r9, #8\n\t"                                                      \
    "add r12, sp, #24\n\t"                                                    \
    "ldm r12, {r4-r7}\n\t"
/* Kernel row at r9 for 4 pixels at stride 2 (mcf_dsp_dw3q_s2): pixel j
 * reads x(2j), x(2j+1), x(2j+2); one LDM brings x0x1 .. x6x7, an LDRSH x8
 * (a 5-word LDM would read past the row's last window); the row's taps 0, 1
 * (frame offset w) meet the pairs x(2j)x(2j+1), its tap 2 (half h of the
 * word at wc) the bottom halves x(2j+2). r1-r3 start from a1-a3, r0 from
 * itself (the bias on the first row). */
#define MCF_DW3Q_ROW_S2(w, wc, h, a1, a2, a3)                                  \
    "ldm r9, {r4-r7}\n\t"        /* x0x1 x2x3 x4x5 x6x7 */                 \
    "ldrsh r8, [r9, #16]\n\t"    /* x8 */                                   \
    "ldr r11, [sp, #" w "]\n\t"                                               \
    "ldr r12, [sp, #" wc "]\n\t"                                              \
    "smlad r1, r5, r11, " a1 "\n\t"                                            \
    "smlad r2, r6, r11, " a2 "\n\t"                                            \
    "smlad r3, r7, r11, " a3 "\n\t"                                            \
    "smlad r0, r4, r11, r0\n\t"                                               \
    "smlab" h " r0, r5, r12, r0\n\t"                                          \
    "smlab" h " r1, r6, r12, r1\n\t"                                          \
    "smlab" h " r2, r7, r12, r2\n\t"                                          \
    "smlab" h " r3, r8, r12, r3\n\t"
/* The window of 4 pixels at stride 2: the channel's words w0, w1, w2 (taps
 * 0, 1 of rows 0-2) at frame 0-8, wc01, wc2 (their taps 2) at 12, 16; r9
 * then 16 bytes on, the record into r4-r7 (r11 is free: the row's end of
 * whole steps waits at frame 120). */
#define MCF_DW3Q_STEP_S2                                                        \
    "ldr r0, [sp, #20]\n\t"        /* the bias */                           \
    MCF_DW3Q_ROW_S2("0", "12", "b", "r0", "r0", "r0")                         \
    "add r9, r9, r10\n\t"                                                     \
    MCF_DW3Q_ROW_S2("4", "12", "t", "r1", "r2", "r3")                         \
    "add r9, r9, r10\n\t"                                                     \
    MCF_DW3Q_ROW_S2("8", "16", "b", "r1", "r2", "r3")                         \
    "sub r9, r9, r10, lsl #1\n\t"                                             \
    "add r9, r9, #16\n\t"                                                     \
    "add r12, sp, #24\n\t"                                                    \
    "ldm r12, {r4-r7}\n\t"
/* the row's end of whole steps kept (in r11 at stride 1, at frame 120 at stride 2), the loop's test against it */
#define MCF_DW3Q_SAVE_END_S1 ""
#define MCF_DW3Q_SAVE_END_S2 "str r11, [sp, #120]\n\t"
#define MCF_DW3Q_END_S1 "cmp lr, r11\n\t"
#define MCF_DW3Q_END_S2 "ldr r12, [sp, #120]\n\tcmp lr, r12\n\t"
/* two pixels at stride 2: x0x1, x2x3 and x4 */
#define MCF_DW3Q_PAIR_S2(w, wc, h)                                              \
    "ldr r11, [r9]\n\t"                                                        \
    "ldr r12, [r9, #4]\n\t"                                                    \
    "smlad r0, " w ", r11, r0\n\t"                                            \
    "smlad r1, " w ", r12, r1\n\t"                                            \
    "smlab" h " r0, r12, " wc ", r0\n\t"                                      \
    "ldrsh r11, [r9, #8]\n\t"                                                  \
    "smlab" h " r1, r11, " wc ", r1\n\t"
/* The 3 kernel rows by ROW (one pointer, krow bytes apart), the pointer
 * `advance` bytes on, then the record (m, e, rounding, step) into r4-r7. */
#define MCF_DW3Q_WINDOW(ROW, advance)                                           \
    ROW("r4", "r7", "b")                                                      \
    "add r9, r9, r10\n\t"                                                     \
    ROW("r5", "r7", "t")                                                      \
    "add r9, r9, r10\n\t"                                                     \
    ROW("r6", "r8", "b")                                                      \
    "sub r9, r9, r10, lsl #1\n\t"                                             \
    "add r9, r9, #" advance "\n\t"                                            \
    "add r11, sp, #24\n\t"                                                    \
    "ldm r11, {r4-r7}\n\t"
/* requantization of acc with r4 m, r5 e, r6 the rounding (r12 scratch) */
#define MCF_DW3Q_OUT(acc) MCF_ASM_REQUANT(acc, acc, "r12", "r4", "r5", "r6")
#define MCF_DW3Q_OUT_LO(acc) MCF_ASM_REQUANT_LO(acc, acc, "r4", "r5", "r6")
#define MCF_DW3Q_FUNCTION(name, OUT, STEP4, SAVE_END, END4, PAIR, ADV2, ADV1)   \
    MCF_ASM_FUNCTION(name)                                                    \
    "sub sp, sp, #124\n\t"                                                    \
    "ldmia r0, {r1-r12}\n\t"       /* the job */                             \
    "str r1, [sp, #72]\n\t"                                                   \
    "str r2, [sp, #100]\n\t"                                                  \
    "add r1, sp, #36\n\t"                                                     \
    "stmia r1, {r3, r4, r5}\n\t"   /* step, span, odd */                     \
    "strd r6, r7, [sp, #104]\n\t"  /* the channel's first plane row, output */ \
    "str r8, [sp, #116]\n\t"                                                  \
    "add r1, sp, #60\n\t"                                                     \
    "stmia r1, {r9, r10, r11}\n\t" /* krow, orow, out_row */                 \
    "str r12, [sp, #112]\n"                                                   \
    "8:\n\t"                        /* a channel */                           \
    "ldr r0, [sp, #72]\n\t"                                                   \
    "ldmia r0!, {r1-r9}\n\t"                                                  \
    "str r0, [sp, #72]\n\t"                                                   \
    "stmia sp, {r1-r9}\n\t"                                                   \
    "lsr r6, r1, #16\n\t"          /* per kernel row w01 and w12 */         \
    "pkhbt r6, r6, r4, lsl #16\n\t"                                           \
    "strd r1, r6, [sp, #76]\n\t"                                              \
    "pkhtb r6, r4, r2, asr #16\n\t"                                           \
    "strd r2, r6, [sp, #84]\n\t"                                              \
    "lsr r6, r3, #16\n\t"                                                     \
    "pkhbt r6, r6, r5, lsl #16\n\t"                                           \
    "strd r3, r6, [sp, #92]\n\t"                                              \
    "ldr r10, [sp, #60]\n\t"       /* krow, for the whole channel */        \
    "ldr r1, [sp, #116]\n\t"                                                  \
    "str r1, [sp, #56]\n\t"        /* rows left */                           \
    "ldrd r9, lr, [sp, #104]\n\t"  /* the first row's plane pointer, output */ \
    "strd r9, lr, [sp, #48]\n"                                                \
    "2:\n\t"                        /* an output row */                       \
    "ldr r11, [sp, #40]\n\t"                                                  \
    "add r11, lr, r11\n\t"        /* the row's end of whole steps */       \
    SAVE_END                                                                  \
    "cmp lr, r11\n\t"                                                         \
    "beq 4f\n"                                                                \
    "1:\n\t"                        /* 4 pixels */                            \
    STEP4                                                                     \
    OUT("r0") OUT("r1") OUT("r2") OUT("r3")                                   \
    "strb r0, [lr]\n\t"                                                       \
    "strb r1, [lr, r7]\n\t"                                                   \
    "add lr, lr, r7, lsl #1\n\t"                                              \
    "strb r2, [lr]\n\t"                                                       \
    "strb r3, [lr, r7]\n\t"                                                   \
    "add lr, lr, r7, lsl #1\n\t"                                              \
    END4                                                                      \
    "bne 1b\n"                                                                \
    "4:\n\t"                        /* the pixels after the steps */         \
    "ldr r3, [sp, #44]\n\t"                                                   \
    "cmp r3, #2\n\t"                                                          \
    "blt 7f\n\t"                                                              \
    "ldm sp, {r4-r8}\n\t"          /* two of them */                        \
    "ldr r0, [sp, #20]\n\t"                                                   \
    "mov r1, r0\n\t"                                                          \
    MCF_DW3Q_WINDOW(PAIR, ADV2)                                               \
    OUT("r0") OUT("r1")                                                       \
    "strb r0, [lr]\n\t"                                                       \
    "strb r1, [lr, r7]\n\t"                                                   \
    "add lr, lr, r7, lsl #1\n\t"                                              \
    "subs r3, r3, #2\n"                                                       \
    "7:\n\t"                                                                  \
    "cbz r3, 5f\n"                                                            \
    "3:\n\t"                                                                  \
    "ldm sp, {r4-r8}\n\t"                                                     \
    "ldr r0, [sp, #20]\n\t"                                                   \
    "ldr r1, [r9]\n\t"                                                        \
    "ldrsh r2, [r9, #4]\n\t"                                                  \
    "smlad r0, r4, r1, r0\n\t"                                                \
    "smlabb r0, r2, r7, r0\n\t"                                               \
    "add r12, r9, r10\n\t"                                                    \
    "ldr r1, [r12]\n\t"                                                       \
    "ldrsh r2, [r12, #4]\n\t"                                                 \
    "smlad r0, r5, r1, r0\n\t"                                                \
    "smlabt r0, r2, r7, r0\n\t"                                               \
    "add r12, r12, r10\n\t"                                                   \
    "ldr r1, [r12]\n\t"                                                       \
    "ldrsh r2, [r12, #4]\n\t"                                                 \
    "smlad r0, r6, r1, r0\n\t"                                                \
    "smlabb r0, r2, r8, r0\n\t"                                               \
    "add r11, sp, #24\n\t"                                                    \
    "ldm r11, {r4-r7}\n\t"                                                    \
    OUT("r0")                                                                 \
    "strb r0, [lr]\n\t"                                                       \
    "add lr, lr, r7\n\t"                                                      \
    "add r9, r9, #" ADV1 "\n\t"                                               \
    "subs r3, r3, #1\n\t"                                                     \
    "bne 3b\n"                                                                \
    "5:\n\t"                        /* the next row, if any */                \
    "ldr r1, [sp, #56]\n\t"                                                   \
    "subs r1, r1, #1\n\t"                                                     \
    "beq 6f\n\t"                                                              \
    "str r1, [sp, #56]\n\t"                                                   \
    "ldrd r9, lr, [sp, #48]\n\t"                                              \
    "ldrd r2, r3, [sp, #64]\n\t"  /* orow, out_row */                        \
    "add r9, r9, r2\n\t"                                                      \
    "add lr, lr, r3\n\t"                                                      \
    "strd r9, lr, [sp, #48]\n\t"                                              \
    "b 2b\n"                                                                  \
    "6:\n\t"                        /* the next channel, if any */            \
    "ldr r1, [sp, #100]\n\t"                                                  \
    "subs r1, r1, #1\n\t"                                                     \
    "beq 9f\n\t"                                                              \
    "str r1, [sp, #100]\n\t"                                                  \
    "ldrd r2, r3, [sp, #104]\n\t"                                             \
    "ldr r1, [sp, #112]\n\t"                                                  \
    "add r2, r2, r1\n\t"                                                      \
    "add r3, r3, #1\n\t"                                                      \
    "strd r2, r3, [sp, #104]\n\t"                                             \
    "b 8b\n"                                                                  \
    "9:\n\t"                                                                  \
    "add sp, sp, #124\n\t"                                                    \
    "pop {r4-r11, pc}\n\t"                                                    \
    ".size " name ", .-" name "\n\t"                                          \
    ".popsection"
void mcf_dsp_dw3q_s1(const mcf_dw3q_job *job);
void mcf_dsp_dw3q_s1_lo(const mcf_dw3q_job *job);
void mcf_dsp_dw3q_s2(const mcf_dw3q_job *job);
void mcf_dsp_dw3q_s2_lo(const mcf_dw3q_job *job);
#define MCF_DW3Q_S1 MCF_DW3Q_STEP_S1, MCF_DW3Q_SAVE_END_S1, MCF_DW3Q_END_S1, MCF_DW3Q_PAIR, "4", "2"
#define MCF_DW3Q_S2 MCF_DW3Q_STEP_S2, MCF_DW3Q_SAVE_END_S2, MCF_DW3Q_END_S2, MCF_DW3Q_PAIR_S2, "8", "4"
#define MCF_DW3Q_EXPAND(args) MCF_DW3Q_FUNCTION args
__asm__(MCF_DW3Q_EXPAND(("mcf_dsp_dw3q_s1", MCF_DW3Q_OUT, MCF_DW3Q_S1)));
__asm__(MCF_DW3Q_EXPAND(("mcf_dsp_dw3q_s1_lo", MCF_DW3Q_OUT_LO, MCF_DW3Q_S1)));
__asm__(MCF_DW3Q_EXPAND(("mcf_dsp_dw3q_s2", MCF_DW3Q_OUT, MCF_DW3Q_S2)));
__asm__(MCF_DW3Q_EXPAND(("mcf_dsp_dw3q_s2_lo", MCF_DW3Q_OUT_LO, MCF_DW3Q_S2)));
#undef MCF_DW3Q_S1
#undef MCF_DW3Q_S2
#undef MCF_DW3Q_EXPAND
#undef MCF_DW3Q_STEP_S1
#undef MCF_DW3Q_STEP_S2
#undef MCF_DW3Q_ROW_S2
#undef MCF_DW3Q_SAVE_END_S1
#undef MCF_DW3Q_SAVE_END_S2
#undef MCF_DW3Q_END_S1
#undef MCF_DW3Q_END_S2
#undef MCF_DW3Q_PAIR_S2
#undef MCF_DW3Q_ROW
#undef MCF_DW3Q_PAIR
#undef MCF_DW3Q_WINDOW
#undef MCF_DW3Q_OUT
#undef MCF_DW3Q_OUT_LO
#undef MCF_DW3Q_FUNCTION
#undef MCF_DW3_ENTRY
#undef MCF_DW3_ROW_S1
#undef MCF_DW3_ROW_S2
#undef MCF_DW3_OUT
#undef MCF_DW3_OUT_LO
#undef MCF_DW3_FUNCTION
#undef MCF_DW3_EXIT
#undef MCF_DW3_ROW_1
#endif

#ifdef MCF_DSP_ASM
/* One output row (`pixels` wide) of the 4 channels of a group, each in one
 * call of the assembly: the window rows kr are channel 0's, channel j's
 * follow at j * width. */
static void __attribute__((noinline)) dw3_rows(mcf_dw3_job *jobs, const int16_t *const *kr, int32_t width,
                                                int8_t *out, int32_t pixels, int32_t step, int32_t stride, int lo)
{
    void (*const row)(const mcf_dw3_job *) = stride == 1 ? (lo ? mcf_dsp_dw3_s1_lo : mcf_dsp_dw3_s1)
                                                         : (lo ? mcf_dsp_dw3_s2_lo : mcf_dsp_dw3_s2);
    int32_t j;
    for (j = 0; j < 4; ++j) {
        mcf_dw3_job *job = &jobs[j];
        job->r0 = kr[0] + j * width;
        job->r1 = kr[1] + j * width;
        job->r2 = kr[2] + j * width;
        job->out = out + j;
        job->out_end = out + j + (pixels & ~1) * step;
        job->odd = pixels & 1;
        row(job);
    }
}
#endif

static int params_valid(const mcf_depthwise_conv2d_params *p)
{
    int32_t i;
    if (p->in_h <= 0 || p->in_w <= 0 || p->in_c <= 0 || (p->in_c & 3) != 0 || p->out_h <= 0 || p->out_w <= 0 ||
        p->depth_multiplier != 1 || p->out_c != p->in_c || p->k_h <= 0 || p->k_w <= 0 || p->stride_h <= 0 ||
        p->stride_w <= 0 || p->dilation_h <= 0 || p->dilation_w <= 0 || p->act_min < -128 || p->act_max > 127 || p->act_min > p->act_max || p->filter == NULL ||
        p->bias == NULL || p->multiplier == NULL || p->shift == NULL) {
        return 0;
    }
    for (i = 0; i < p->out_c; ++i) {
        if (p->shift[i] < -31 || p->shift[i] > 31) {
            return 0;
        }
    }
    return 1;
}

/* Pixels of a padded ring row: pad_left + in_w + what the rightmost window
 * needs; the int16 row of a channel is that rounded up to even (4-byte
 * aligned rows). */
static int32_t ring_width(const mcf_depthwise_conv2d_params *p)
{
    const int32_t reach = (p->out_w - 1) * p->stride_w + (p->k_w - 1) * p->dilation_w + 1;
    const int32_t width = p->pad_left + p->in_w;
    return ((reach > width ? reach : width) + 1) & ~1;
}

static int32_t ring_rows(const mcf_depthwise_conv2d_params *p, int32_t in_place)
{
    const int32_t rows = mcf_ring_rows_of(p, in_place);
    return rows > 0 ? rows : 1;
}

/* A 3x3 window with stride 1 or 2 along the rows: the two-pixel rows above;
 * a kernel row in the padding then reads a row of zeros after the ring. */
static int is_3x3(const mcf_depthwise_conv2d_params *p)
{
    return p->k_h == 3 && p->k_w == 3 && p->dilation_w == 1 && (p->stride_w == 1 || p->stride_w == 2);
}

static int32_t scratch_size(const mcf_depthwise_conv2d_params *p, int32_t in_place)
{
    if (!params_valid(p) || (in_place && (int64_t)p->out_h * p->out_w > (int64_t)p->in_h * p->in_w)) {
        return MCF_ERR_ARG;
    }
    return (ring_rows(p, in_place) + (is_3x3(p) ? 1 : 0)) * ring_width(p) * 4 * (int32_t)sizeof(int16_t);
}

int32_t mcf_dsp_depthwise_conv2d_s8_scratch_size(const mcf_depthwise_conv2d_params *p)
{
    return scratch_size(p, 0);
}

int32_t mcf_dsp_depthwise_conv2d_s8_inplace_scratch_size(const mcf_depthwise_conv2d_params *p)
{
    return scratch_size(p, 1);
}

/* One kernel row of a 3x3 window for two output pixels: x01, x23 hold the
 * int16 inputs 0-3 of out0's window start (stride 1: out1's window is
 * inputs 1-3, x12; stride 2: inputs 2-4, x23 and x4). */
MCF_INLINE void row3_s1(const int16_t *r, int32_t w01, int32_t w2, int32_t *a0, int32_t *a1)
{
    const int32_t x01 = pair(r), x12 = pair(r + 1), x23 = pair(r + 2);
    *a0 = __smlad(w01, x01, *a0);
    *a0 = __smlabb(x23, w2, *a0);
    *a1 = __smlad(w01, x12, *a1);
    *a1 = __smlatb(x23, w2, *a1);
}

MCF_INLINE void row3_s2(const int16_t *r, int32_t w01, int32_t w2, int32_t *a0, int32_t *a1)
{
    const int32_t x01 = pair(r), x23 = pair(r + 2), x4 = r[4];
    *a0 = __smlad(w01, x01, *a0);
    *a0 = __smlabb(x23, w2, *a0);
    *a1 = __smlad(w01, x23, *a1);
    *a1 = __smlabb(x4, w2, *a1);
}

/* One output pixel's kernel row of 3 taps at r. */
MCF_INLINE int32_t row3_1(const int16_t *r, int32_t w01, int32_t w2, int32_t a)
{
    return __smlabb((int32_t)r[2], w2, __smlad(w01, pair(r), a));
}

MCF_INLINE int8_t out_of(const dw_ctx *p, int32_t acc, int32_t m, int32_t sh, int fast)
{
    return mcf_dsp_out(acc, m, sh, p->output_offset, p->act_min, p->act_max, fast);
}

/* One output row of one channel, 3x3 window (r0, r1, r2: its ring rows, or
 * the row of zeros for a kernel row in the padding), stride 1 or 2 two
 * pixels a step (the assembly above does the same, dw3_rows). */
MCF_INLINE void row_3x3(const dw_ctx *p, const int16_t *r0, const int16_t *r1, const int16_t *r2,
                        const uint32_t *w, int32_t bias, int32_t m, int32_t sh, int8_t *out, int fast)
{
    const int32_t w0 = (int32_t)w[0], w0c = (int32_t)w[1], w1 = (int32_t)w[2], w1c = (int32_t)w[3];
    const int32_t w2 = (int32_t)w[4], w2c = (int32_t)w[5];
    const int32_t n = p->out_w, s = p->stride_w, step = p->channels;
    int32_t ox = 0;
    for (; ox + 1 < n; ox += 2, r0 += 2 * s, r1 += 2 * s, r2 += 2 * s, out += 2 * step) {
        int32_t a0 = bias, a1 = bias;
        if (s == 1) {
            row3_s1(r0, w0, w0c, &a0, &a1);
            row3_s1(r1, w1, w1c, &a0, &a1);
            row3_s1(r2, w2, w2c, &a0, &a1);
        } else {
            row3_s2(r0, w0, w0c, &a0, &a1);
            row3_s2(r1, w1, w1c, &a0, &a1);
            row3_s2(r2, w2, w2c, &a0, &a1);
        }
        out[0] = out_of(p, a0, m, sh, fast);
        out[step] = out_of(p, a1, m, sh, fast);
    }
    for (; ox < n; ++ox, r0 += s, r1 += s, r2 += s, out += step) {
        const int32_t a = row3_1(r2, w2, w2c, row3_1(r1, w1, w1c, row3_1(r0, w0, w0c, bias)));
        *out = out_of(p, a, m, sh, fast);
    }
}

/* One output row of one channel, any window: kernel rows ky_start ..
 * ky_end - 1 (the others lie in the padding), their ring rows from
 * first_slot on. */
MCF_INLINE void row_any(const dw_ctx *p, const int16_t *ring, int32_t row_bytes, int32_t first_slot,
                        int32_t slot_step, int32_t rows, int32_t ky_start, int32_t ky_end, const uint32_t *w,
                        int32_t bias, int32_t m, int32_t sh, int8_t *out, int fast)
{
    const int32_t s = p->stride_w, d = p->dilation_w, kw = p->k_w;
    int32_t ox;
    for (ox = 0; ox < p->out_w; ++ox, out += p->channels) {
        int32_t slot = first_slot, ky, kx, a = bias;
        for (ky = ky_start; ky < ky_end; ++ky) {
            const int16_t *x = (const int16_t *)(const void *)((const int8_t *)ring + slot * row_bytes) + ox * s;
            const uint32_t *wk = w + ky * p->pairs;
            if (d == 1) {
                for (kx = 0; kx + 1 < kw; kx += 2) {
                    a = __smlad((int32_t)wk[kx / 2], pair(x + kx), a);
                }
                if (kx < kw) {
                    a = __smlabb((int32_t)x[kx], (int32_t)wk[kx / 2], a);
                }
            } else {
                for (kx = 0; kx < kw; ++kx) {
                    const int32_t wv = (int32_t)wk[kx / 2];
                    a = (kx & 1) ? __smlabt((int32_t)x[kx * d], wv, a) : __smlabb((int32_t)x[kx * d], wv, a);
                }
            }
            slot += slot_step;
            slot = slot >= rows ? slot - rows : slot;
        }
        *out = out_of(p, a, m, sh, fast);
    }
}

/* One output row of one channel, a window KW (5 or 7) taps wide with
 * stride S (1 or 2) along the rows and dilation 1, for a layer whose
 * channels requantize from records (rq, mcf_dsp_out_records): two output
 * pixels a step with the taps unrolled (per kernel row KW / 2 SMLAD and one
 * SMLAxy for each pixel), then a last odd pixel. Kernel rows as row_any's. */
MCF_INLINE void row_wide(const dw_ctx *p, const int16_t *ring, int32_t row_bytes, int32_t first_slot,
                         int32_t slot_step, int32_t rows, int32_t ky_start, int32_t ky_end, const uint32_t *w,
                         int32_t bias, const int32_t *rq, int8_t *out, const int32_t KW, const int32_t S)
{
    const int32_t n = p->out_w, step = p->channels;
    const int lo = mcf_dsp_records_lo(p->output_offset);
    int32_t ox, a0, a1, slot, ky, i;
    for (ox = 0; ox + 1 < n; ox += 2, out += 2 * step) {
        a0 = bias;
        a1 = bias;
        slot = first_slot;
        for (ky = ky_start; ky < ky_end; ++ky) {
            const int16_t *x = (const int16_t *)(const void *)((const int8_t *)ring + slot * row_bytes) + ox * S;
            const uint32_t *wk = w + ky * (KW / 2 + 1);
            const int32_t last = (int32_t)wk[KW / 2]; /* tap KW - 1 in its low half */
            for (i = 0; i < KW / 2; ++i) {
                a0 = __smlad((int32_t)wk[i], pair(x + 2 * i), a0);
                a1 = __smlad((int32_t)wk[i], pair(x + S + 2 * i), a1);
            }
            if (S == 1) { /* inputs KW - 1 and KW in one word */
                const int32_t t = pair(x + KW - 1);
                a0 = __smlabb(t, last, a0);
                a1 = __smlatb(t, last, a1);
            } else {
                a0 = __smlabb((int32_t)x[KW - 1], last, a0);
                a1 = __smlabb((int32_t)x[KW + 1], last, a1);
            }
            slot += slot_step;
            slot = slot >= rows ? slot - rows : slot;
        }
        out[0] = mcf_dsp_out_records(a0, rq, lo);
        out[step] = mcf_dsp_out_records(a1, rq, lo);
    }
    if (ox < n) { /* the last odd pixel, unrolled too (narrow rows: a third of their pixels or more) */
        a0 = bias;
        slot = first_slot;
        for (ky = ky_start; ky < ky_end; ++ky) {
            const int16_t *x = (const int16_t *)(const void *)((const int8_t *)ring + slot * row_bytes) + ox * S;
            const uint32_t *wk = w + ky * (KW / 2 + 1);
            for (i = 0; i < KW / 2; ++i) {
                a0 = __smlad((int32_t)wk[i], pair(x + 2 * i), a0);
            }
            a0 = __smlabb((int32_t)x[KW - 1], (int32_t)wk[KW / 2], a0);
            slot += slot_step;
            slot = slot >= rows ? slot - rows : slot;
        }
        *out = mcf_dsp_out_records(a0, rq, lo);
    }
}

/* row_wide's four copies: window widths 5 and 7, strides 1 and 2. */
#define MCF_ROW_WIDE(name, KW, S)                                                                              \
    static void __attribute__((noinline)) name(const dw_ctx *p, const int16_t *ring, int32_t row_bytes,         \
                                               int32_t first_slot, int32_t slot_step, int32_t rows,            \
                                               int32_t ky_start, int32_t ky_end, const uint32_t *w,            \
                                               int32_t bias, const int32_t *rq, int8_t *out)                   \
    {                                                                                                           \
        row_wide(p, ring, row_bytes, first_slot, slot_step, rows, ky_start, ky_end, w, bias, rq, out, KW, S);   \
    }
MCF_ROW_WIDE(row_5_s1, 5, 1)
MCF_ROW_WIDE(row_5_s2, 5, 2)
MCF_ROW_WIDE(row_7_s1, 7, 1)
MCF_ROW_WIDE(row_7_s2, 7, 2)
#undef MCF_ROW_WIDE

typedef void (*row_wide_fn)(const dw_ctx *, const int16_t *, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t,
                            const uint32_t *, int32_t, const int32_t *, int8_t *);

/* The unrolled row of a layer (row_wide), or NULL: window width 5 or 7,
 * stride 1 or 2 and dilation 1 along the rows, records (fit: mcf_dsp_records_fit). */
static row_wide_fn wide_row_of(const mcf_depthwise_conv2d_params *p, int fit)
{
    const int s = p->stride_w;
    if (!fit || p->dilation_w != 1 || (s != 1 && s != 2)) {
        return NULL;
    }
    if (p->k_w == 5) {
        return s == 1 ? row_5_s1 : row_5_s2;
    }
    if (p->k_w == 7) {
        return s == 1 ? row_7_s1 : row_7_s2;
    }
    return NULL;
}

/* One input pixel's 4 channels (one word, the input offset added by
 * SXTAB16) into the plane rows of channels 0-3 at dst, width int16 apart. */
MCF_INLINE void plane_one(int16_t *dst, int32_t width, uint32_t v, int32_t offset2)
{
    const int32_t x02 = __sxtab16(offset2, v), x13 = mcf_sxtab16_ror8(offset2, v);
    dst[0] = (int16_t)x02;
    dst[width] = (int16_t)x13;
    dst[2 * width] = (int16_t)(x02 >> 16);
    dst[3 * width] = (int16_t)(x13 >> 16);
}

/* Two neighbouring pixels (v0, v1) at a 4-byte aligned dst: each channel's
 * two int16 values packed into one word (PKHBT / PKHTB), 4 word stores. */
MCF_INLINE void plane_two(int16_t *dst, int32_t width, uint32_t v0, uint32_t v1, int32_t offset2)
{
    const uint32_t a02 = (uint32_t)__sxtab16(offset2, v0), a13 = (uint32_t)mcf_sxtab16_ror8(offset2, v0);
    const uint32_t b02 = (uint32_t)__sxtab16(offset2, v1), b13 = (uint32_t)mcf_sxtab16_ror8(offset2, v1);
    mcf_write32(dst, mcf_pack_lo(a02, b02));
    mcf_write32(dst + width, mcf_pack_lo(a13, b13));
    mcf_write32(dst + 2 * width, mcf_pack_hi(a02, b02));
    mcf_write32(dst + 3 * width, mcf_pack_hi(a13, b13));
}

/* n input pixels' 4 channels (src, `channels` bytes apart) into the int16
 * rows of channels 0-3 at dst (width apart), the input offset added: one
 * pixel first when dst is not 4-byte aligned, then two per step. */
MCF_INLINE void copy_row4(int16_t *dst, int32_t width, const int8_t *src, int32_t n, int32_t channels,
                          int32_t offset2)
{
    if (n > 0 && ((uintptr_t)dst & 2u) != 0) {
        plane_one(dst++, width, mcf_read32(src), offset2);
        src += channels;
        --n;
    }
    for (; n >= 2; n -= 2, src += 2 * channels, dst += 2) {
        plane_two(dst, width, mcf_read32(src), mcf_read32(src + channels), offset2);
    }
    if (n) {
        plane_one(dst, width, mcf_read32(src), offset2);
    }
}

MCF_INLINE void run(const mcf_depthwise_conv2d_params *p, const int8_t *input,
                    int8_t *output, int8_t *ring, int32_t in_place, int fast)
{
    const int32_t in_w = p->in_w, channels = p->in_c;
    const int32_t rows = ring_rows(p, in_place), width = ring_width(p);
    const int32_t row_bytes = width * 4 * (int32_t)sizeof(int16_t); /* 4 channel rows */
    const int32_t last = mcf_ring_last(p), slot_step = p->dilation_h % rows;
    const int32_t copy_start = p->pad_left > 0 ? p->pad_left : 0;
    const int32_t copy_end = p->pad_left + in_w < width ? p->pad_left + in_w : width;
    const int32_t offset2 = (int32_t)(((uint32_t)p->input_offset & 0xFFFFu) | ((uint32_t)p->input_offset << 16));
    const int32_t pairs = (p->k_w + 1) / 2, per_channel = p->k_h * pairs;
    const uint32_t *filter = (const uint32_t *)(const void *)p->filter;
    const int full3x3 = is_3x3(p);
    const dw_ctx ctx = {p->output_offset, p->act_min, p->act_max, p->out_w, p->in_c, p->k_w, p->stride_w,
                        p->dilation_w, pairs};
    const int16_t *zeros = (const int16_t *)(const void *)(ring + rows * row_bytes); /* 3x3: after the ring */
    const row_wide_fn wide = wide_row_of(p, mcf_dsp_records_fit(fast, p->shift, channels));
    int32_t c, x;
#ifdef MCF_DSP_ASM
    mcf_dw3_job jobs[4];
    const int use_asm = full3x3 && mcf_dsp_records_fit(fast, p->shift, channels);
#endif
    /* the padding columns (and the rest; the row of zeros), never overwritten */
    for (x = 0; x < (rows + (full3x3 ? 1 : 0)) * width * 4; ++x) {
        ((int16_t *)(void *)ring)[x] = 0;
    }
    for (c = 0; c < channels; c += 4) {
        int32_t copied = -1; /* rows <= copied were copied or are never needed */
        int32_t oy, r, j;
        const int16_t *kr[3] = {zeros, zeros, zeros};
#ifdef MCF_DSP_ASM
        for (j = 0; j < 4 && use_asm; ++j) {
            const uint32_t *w = filter + (c + j) * per_channel;
            jobs[j].w0 = (int32_t)w[0];
            jobs[j].w1 = (int32_t)w[2];
            jobs[j].w2 = (int32_t)w[4];
            jobs[j].wc01 = (int32_t)((w[1] & 0xFFFFu) | (w[3] << 16));
            jobs[j].wc2 = (int32_t)w[5];
            jobs[j].bias = p->bias[c + j];
            mcf_dsp_record(p->multiplier[c + j], p->shift[c + j], p->output_offset, jobs[j].record);
            jobs[j].step = channels;
        }
#endif
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_top;
            const int32_t ky_start = mcf_first_tap(y0, p->dilation_h);
            const int32_t ky_end = mcf_end_tap(y0, p->dilation_h, p->in_h, p->k_h);
            const int32_t first = ky_start < ky_end ? (y0 + ky_start * p->dilation_h) % rows : 0;
            int8_t *out = output + oy * p->out_w * channels + c;
            int32_t lo, hi;
            mcf_ring_bounds_of(p, last, oy, in_place, &lo, &hi);
            for (r = copied + 1 > lo ? copied + 1 : lo; r <= hi; ++r) {
                /* ring column j holds input column j - pad_left (a patch may start inside the input:
                 * negative padding); channel k's row at k * width */
                copy_row4((int16_t *)(void *)(ring + (r % rows) * row_bytes) + copy_start, width,
                          input + (r * in_w + copy_start - p->pad_left) * channels + c, copy_end - copy_start,
                          channels, offset2);
            }
            copied = hi > copied ? hi : copied;
            if (full3x3) { /* channel 0's window rows; channel j's follow at j * width */
                int32_t ky, slot = first;
                for (ky = 0; ky < 3; ++ky) {
                    if (ky < ky_start || ky >= ky_end) {
                        kr[ky] = zeros;
                        continue;
                    }
                    kr[ky] = (const int16_t *)(const void *)(ring + slot * row_bytes);
                    slot += slot_step;
                    slot = slot >= rows ? slot - rows : slot;
                }
#ifdef MCF_DSP_ASM
                if (use_asm) { /* the whole row of the 4 channels */
                    dw3_rows(jobs, kr, width, out, p->out_w, channels, p->stride_w,
                             mcf_dsp_records_lo(p->output_offset));
                    continue;
                }
#endif
            }
            for (j = 0; j < 4; ++j) {
                const uint32_t *w = filter + (c + j) * per_channel;
                const int32_t b = p->bias[c + j], m = p->multiplier[c + j], sh = p->shift[c + j];
                const int16_t *ring_j = (const int16_t *)(const void *)ring + j * width;
                if (full3x3) {
                    row_3x3(&ctx, kr[0] + j * width, kr[1] + j * width, kr[2] + j * width, w, b, m, sh, out + j,
                            fast);
                } else if (wide != NULL) {
                    int32_t rq[3];
                    mcf_dsp_record(m, sh, p->output_offset, rq);
                    wide(&ctx, ring_j, row_bytes, first, slot_step, rows, ky_start, ky_end, w, b, rq, out + j);
                } else {
                    row_any(&ctx, ring_j, row_bytes, first, slot_step, rows, ky_start, ky_end, w, b, m, sh,
                            out + j, fast);
                }
            }
        }
    }
}

static int dispatch(const mcf_depthwise_conv2d_params *p, const int8_t *input, int8_t *output, int8_t *scratch,
                    int32_t in_place)
{
    if (scratch_size(p, in_place) < 0 || input == NULL || output == NULL || scratch == NULL) {
        return MCF_ERR_ARG;
    }
    switch (mcf_dsp_mode(p->per_channel, p->act_min, p->act_max)) {
    case MCF_DSP_FAST_SAT:
        run(p, input, output, scratch, in_place, MCF_DSP_FAST_SAT);
        break;
    case MCF_DSP_FAST:
        run(p, input, output, scratch, in_place, MCF_DSP_FAST);
        break;
    default:
        run(p, input, output, scratch, in_place, MCF_DSP_GENERAL);
        break;
    }
    return MCF_OK;
}

/*
 * The plane variant (mcf_dsp_depthwise_conv2d_s8_plane, _inplace_plane): for
 * a 3x3 window with stride 1 or 2 along the rows and no negative padding,
 * the scratch holds every padded input row of 4 channels at once (plane row
 * r: input row r - pad_top, the ring rows' layout), so the rows are copied
 * in one pass per channel group and each channel's output rows follow each
 * other with no ring bookkeeping. More scratch than the ring, fewer cycles:
 * the generator's planner decides (codegen/arm_dsp.py). Any other layer
 * runs the ring kernel in the same scratch (the plane size is never below
 * the ring's).
 *
 * A map whose rows are short next to its columns (KWS's 25 x 5) goes in
 * transposed: plane row r holds input column r - pad_left, the generator
 * stores the filter's taps transposed (codegen/arm_dsp.py), and the
 * outputs along a plane row are out_w * in_c bytes apart. Its rows are then
 * long, and the per-row work (a row's set-up and its last pixels, one at a
 * time) comes once per input column instead of once per input row. The
 * generator decides, by the per-row costs of the assembly under the
 * Cortex-M4 cycle model (codegen/arm_dsp.py plane_oriented), and says so in
 * p->plane_transposed.
 */
static int32_t plane_rows(const mcf_depthwise_conv2d_params *p)
{
    return (p->out_h - 1) * p->stride_h + (p->k_h - 1) * p->dilation_h + 1;
}

static int plane_fits(const mcf_depthwise_conv2d_params *p)
{
    return is_3x3(p) && p->pad_top >= 0 && p->pad_left >= 0;
}

/* The layer seen column by column (rows and columns swapped), as a plane
 * transposed holds it. */
static mcf_depthwise_conv2d_params transposed(const mcf_depthwise_conv2d_params *p)
{
    mcf_depthwise_conv2d_params q = *p;
    q.in_h = p->in_w;
    q.in_w = p->in_h;
    q.out_h = p->out_w;
    q.out_w = p->out_h;
    q.k_h = p->k_w;
    q.k_w = p->k_h;
    q.stride_h = p->stride_w;
    q.stride_w = p->stride_h;
    q.dilation_h = p->dilation_w;
    q.dilation_w = p->dilation_h;
    q.pad_top = p->pad_left;
    q.pad_left = p->pad_top;
    return q;
}

static int32_t plane_scratch_size(const mcf_depthwise_conv2d_params *p, int32_t in_place)
{
    const int32_t ring = scratch_size(p, in_place);
    int32_t plane;
    mcf_depthwise_conv2d_params q;
    if (ring < 0 || !plane_fits(p)) {
        return ring;
    }
    q = p->plane_transposed ? transposed(p) : *p;
    if (!plane_fits(&q)) {
        return -1;
    }
    plane = plane_rows(&q) * ring_width(&q) * 4 * (int32_t)sizeof(int16_t);
    return plane > ring ? plane : ring;
}

int32_t mcf_dsp_depthwise_conv2d_s8_plane_scratch_size(const mcf_depthwise_conv2d_params *p)
{
    return plane_scratch_size(p, 0);
}

int32_t mcf_dsp_depthwise_conv2d_s8_inplace_plane_scratch_size(const mcf_depthwise_conv2d_params *p)
{
    return plane_scratch_size(p, 1);
}

/* The plane kernel on layer p0 as its plane holds it (transposed or not):
 * p is the layer in that orientation; along a plane row the input pixels are
 * in_along bytes apart, the outputs out_along, and from one plane row to the
 * next in_next and out_next. */
MCF_INLINE void run_plane(const mcf_depthwise_conv2d_params *p0, const int8_t *input, int8_t *output,
                          int8_t *plane, int fast)
{
    const int t = p0->plane_transposed != 0;
    const mcf_depthwise_conv2d_params q = t ? transposed(p0) : *p0, *const p = &q;
    const int32_t channels = p->in_c, width = ring_width(p), rows = plane_rows(p);
    const int32_t in_along = t ? p0->in_w * channels : channels, in_next = t ? channels : p0->in_w * channels;
    const int32_t out_along = t ? p0->out_w * channels : channels, out_next = t ? channels : p0->out_w * channels;
    const int32_t row16 = 4 * width; /* int16 per plane row */
    const int32_t copy_w = p->pad_left + p->in_w < width ? p->in_w : width - p->pad_left;
    const int32_t copy_h = p->pad_top + p->in_h < rows ? p->in_h : rows - p->pad_top;
    const int32_t offset2 = (int32_t)(((uint32_t)p->input_offset & 0xFFFFu) | ((uint32_t)p->input_offset << 16));
    const int32_t per_channel = 3 * 2, krow = p->dilation_h * row16, orow = p->stride_h * row16;
    const uint32_t *filter = (const uint32_t *)(const void *)p->filter;
    const dw_ctx ctx = {p->output_offset, p->act_min, p->act_max, p->out_w, out_along, p->k_w, p->stride_w,
                        p->dilation_w, 2};
    int16_t *base = (int16_t *)(void *)plane;
    int32_t c, x, r, j, oy;
#ifdef MCF_DSP_ASM
    mcf_dw3q_job qjob;
    int32_t words[4 * 9]; /* mcf_dw3q_job.ch: the group's channels */
    const int use_asm = mcf_dsp_records_fit(fast, p->shift, channels);
    const int lo = mcf_dsp_records_lo(p->output_offset);
#endif
    for (x = 0; x < rows * row16; ++x) { /* the padding, never overwritten */
        base[x] = 0;
    }
#ifdef MCF_DSP_ASM
    qjob.ch = words;
    qjob.channels = 4;
    qjob.step = out_along;
    qjob.span = (p->out_w & ~3) * out_along;
    qjob.odd = p->out_w & 3;
    qjob.rows = p->out_h;
    qjob.krow = krow * (int32_t)sizeof(int16_t);
    qjob.orow = orow * (int32_t)sizeof(int16_t);
    qjob.out_row = out_next;
    qjob.plane_step = width * (int32_t)sizeof(int16_t);
#endif
    for (c = 0; c < channels; c += 4) {
        for (r = 0; r < copy_h; ++r) {
            copy_row4(base + (r + p->pad_top) * row16 + p->pad_left, width, input + r * in_next + c, copy_w,
                      in_along, offset2);
        }
#ifdef MCF_DSP_ASM
        if (use_asm) { /* 4 pixels a step, the group's 4 channels a call (plane_fits: stride 1 or 2) */
            for (j = 0; j < 4; ++j) {
                const uint32_t *w = filter + (c + j) * per_channel;
                int32_t *ch = words + 9 * j;
                ch[0] = (int32_t)w[0];
                ch[1] = (int32_t)w[2];
                ch[2] = (int32_t)w[4];
                ch[3] = (int32_t)((w[1] & 0xFFFFu) | (w[3] << 16));
                ch[4] = (int32_t)w[5];
                ch[5] = p->bias[c + j];
                mcf_dsp_record(p->multiplier[c + j], p->shift[c + j], p->output_offset, ch + 6);
            }
            qjob.r0 = base;
            qjob.out = output + c;
            /* called directly: no pointer to them, so the ring's row calls cannot reach them (the stack
             * bound); each reads the job and its words, changes nothing in them */
            if (p->stride_w == 1 && lo) {
                mcf_dsp_dw3q_s1_lo(&qjob);
            } else if (p->stride_w == 1) {
                mcf_dsp_dw3q_s1(&qjob);
            } else if (lo) {
                mcf_dsp_dw3q_s2_lo(&qjob);
            } else {
                mcf_dsp_dw3q_s2(&qjob);
            }
            continue;
        }
#endif
        for (j = 0; j < 4; ++j) {
            const uint32_t *w = filter + (c + j) * per_channel;
            const int32_t b = p->bias[c + j], m = p->multiplier[c + j], sh = p->shift[c + j];
            const int16_t *k0 = base + j * width;
            int8_t *out = output + c + j;
            for (oy = 0; oy < p->out_h; ++oy, k0 += orow, out += out_next) {
                row_3x3(&ctx, k0, k0 + krow, k0 + 2 * krow, w, b, m, sh, out, fast);
            }
        }
    }
}

/* Not inlined into its callers: a layer outside plane_fits goes to the ring
 * kernel from there, without this frame below it (the stack bound). */
static __attribute__((noinline)) int dispatch_plane(const mcf_depthwise_conv2d_params *p, const int8_t *input,
                                                    int8_t *output, int8_t *scratch)
{
    switch (mcf_dsp_mode(p->per_channel, p->act_min, p->act_max)) {
    case MCF_DSP_FAST_SAT:
        run_plane(p, input, output, scratch, MCF_DSP_FAST_SAT);
        break;
    case MCF_DSP_FAST:
        run_plane(p, input, output, scratch, MCF_DSP_FAST);
        break;
    default:
        run_plane(p, input, output, scratch, MCF_DSP_GENERAL);
        break;
    }
    return MCF_OK;
}

static int plane_or_ring(const mcf_depthwise_conv2d_params *p, const int8_t *input, int8_t *output,
                         int8_t *scratch, int32_t in_place)
{
    if (plane_scratch_size(p, in_place) < 0 || input == NULL || output == NULL || scratch == NULL) {
        return MCF_ERR_ARG;
    }
    return plane_fits(p) ? dispatch_plane(p, input, output, scratch) : dispatch(p, input, output, scratch, in_place);
}

int mcf_dsp_depthwise_conv2d_s8_plane(const mcf_depthwise_conv2d_params *p, const int8_t *input, int8_t *output,
                                      int8_t *scratch)
{
    return plane_or_ring(p, input, output, scratch, 0);
}

int mcf_dsp_depthwise_conv2d_s8_inplace_plane(const mcf_depthwise_conv2d_params *p, int8_t *buffer,
                                              int8_t *scratch)
{
    return plane_or_ring(p, buffer, buffer, scratch, 1);
}

int mcf_dsp_depthwise_conv2d_s8(const mcf_depthwise_conv2d_params *p, const int8_t *input, int8_t *output,
                                int8_t *scratch)
{
    return dispatch(p, input, output, scratch, 0);
}

int mcf_dsp_depthwise_conv2d_s8_inplace(const mcf_depthwise_conv2d_params *p, int8_t *buffer, int8_t *scratch)
{
    return dispatch(p, buffer, buffer, scratch, 1);
}
