/*
 * mcuforge runtime, private: the ACLE SIMD intrinsics the arm-dsp kernels use.
 *
 * On a core with the DSP extension (__ARM_FEATURE_DSP: Cortex-M4, M7, M33,
 * M55) they come from the compiler's arm_acle.h and are single instructions.
 * Anywhere else (the host, Cortex-M0/M3) this header defines them in plain
 * C99 with exactly the instructions' semantics, so the host test suite runs
 * the very same kernel code. Only the parts the kernels rely on are modelled:
 * wrapping 32-bit results (the Q flag is not), little-endian packing.
 *
 * mcf_sxtb16_ror8(x) is SXTB16 with its built-in rotation (ror #8), which
 * ACLE does not expose; the kernels use it to sign-extend bytes 1 and 3.
 */
#ifndef MCF_ACLE_H
#define MCF_ACLE_H

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "the mcuforge arm-dsp kernels assume a little-endian target"
#endif

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>

static inline int32_t mcf_sxtb16_ror8(uint32_t x)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

static inline int32_t mcf_sxtab16_ror8(int32_t a, uint32_t x)
{
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

/* SMMULR: the rounded high word of a * b, (a * b + 2^31) >> 32 (not in ACLE). */
static inline int32_t mcf_smmulr(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* SMMLAR: c + the rounded high word of a * b, (c * 2^32 + a * b + 2^31) >> 32. */
static inline int32_t mcf_smmlar(int32_t a, int32_t b, int32_t c)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}

/* PKHBT: a's low half, b's low half on top; PKHTB: a's high half, b's high half below. */
static inline uint32_t mcf_pack_lo(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

static inline uint32_t mcf_pack_hi(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
#else
#define MCF_ACLE_PLAIN_C 1

static inline uint32_t mcf_pack_lo(uint32_t a, uint32_t b)
{
    return (a & 0xFFFFu) | (b << 16);
}

static inline uint32_t mcf_pack_hi(uint32_t a, uint32_t b)
{
    return (a >> 16) | (b & 0xFFFF0000u);
}

static inline int32_t mcf_acle_lo16(int32_t x)
{
    return (int32_t)(int16_t)(uint16_t)((uint32_t)x & 0xFFFFu);
}

static inline int32_t mcf_acle_hi16(int32_t x)
{
    return (int32_t)(int16_t)(uint16_t)((uint32_t)x >> 16);
}

static inline int32_t mcf_acle_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}

static inline int32_t mcf_acle_wrap_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

/* SXTB16: sign-extend bytes 0 and 2 into two halfwords. */
static inline int32_t __sxtb16(uint32_t x)
{
    return mcf_acle_pack16((int8_t)(uint8_t)(x & 0xFFu), (int8_t)(uint8_t)((x >> 16) & 0xFFu));
}

/* SXTAB16: halfwise a + SXTB16(x), each half wrapping at 16 bits. */
static inline int32_t __sxtab16(int32_t a, uint32_t x)
{
    const int32_t b = __sxtb16(x);
    return mcf_acle_pack16(mcf_acle_lo16(a) + mcf_acle_lo16(b), mcf_acle_hi16(a) + mcf_acle_hi16(b));
}

static inline int32_t mcf_sxtb16_ror8(uint32_t x)
{
    return __sxtb16((x >> 8) | (x << 24));
}

static inline int32_t mcf_sxtab16_ror8(int32_t a, uint32_t x)
{
    return __sxtab16(a, (x >> 8) | (x << 24));
}

static inline int32_t mcf_smmulr(int32_t a, int32_t b)
{
    const int64_t p = (int64_t)a * b + ((int64_t)1 << 31);
    return (int32_t)(p >= 0 ? p >> 32 : ~(~p >> 32));
}

static inline int32_t mcf_smmlar(int32_t a, int32_t b, int32_t c)
{
    return (int32_t)((uint32_t)c + (uint32_t)mcf_smmulr(a, b));
}

/* SMLAD: acc + lo(a) * lo(b) + hi(a) * hi(b). */
static inline int32_t __smlad(int32_t a, int32_t b, int32_t acc)
{
    const int32_t p = mcf_acle_wrap_add(mcf_acle_lo16(a) * mcf_acle_lo16(b), mcf_acle_hi16(a) * mcf_acle_hi16(b));
    return mcf_acle_wrap_add(acc, p);
}

/* SMLAxy: acc + half x of a * half y of b (b = bottom, t = top). */
static inline int32_t __smlabb(int32_t a, int32_t b, int32_t acc)
{
    return mcf_acle_wrap_add(acc, mcf_acle_lo16(a) * mcf_acle_lo16(b));
}

static inline int32_t __smlatt(int32_t a, int32_t b, int32_t acc)
{
    return mcf_acle_wrap_add(acc, mcf_acle_hi16(a) * mcf_acle_hi16(b));
}

static inline int32_t __smlabt(int32_t a, int32_t b, int32_t acc)
{
    return mcf_acle_wrap_add(acc, mcf_acle_lo16(a) * mcf_acle_hi16(b));
}

static inline int32_t __smlatb(int32_t a, int32_t b, int32_t acc)
{
    return mcf_acle_wrap_add(acc, mcf_acle_hi16(a) * mcf_acle_lo16(b));
}

/* SSAT: saturate to a signed `bits`-bit range. */
static inline int32_t __ssat(int32_t x, uint32_t bits)
{
    const int32_t hi = (int32_t)((1u << (bits - 1u)) - 1u), lo = -hi - 1;
    return x < lo ? lo : (x > hi ? hi : x);
}
#endif

/* Unaligned-safe, aliasing-safe 32-bit access (one LDR/STR on Cortex-M4/M7). */
static inline uint32_t mcf_read32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void mcf_write32(void *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

#endif /* MCF_ACLE_H */
