/* Arm semihosting calls (bkpt 0xAB on M-profile), as QEMU implements them
 * with -semihosting-config enable=on,target=native. mcuforge target support. */
#ifndef MCUFORGE_SEMIHOST_H
#define MCUFORGE_SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

#define SH_SYS_OPEN 0x01
#define SH_SYS_CLOSE 0x02
#define SH_SYS_WRITE0 0x04
#define SH_SYS_WRITE 0x05
#define SH_SYS_READ 0x06
#define SH_SYS_GET_CMDLINE 0x15
#define SH_SYS_EXIT_EXTENDED 0x20
#define SH_ADP_STOPPED_APPLICATION_EXIT 0x20026

static inline int sh_call(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static inline void sh_puts(const char *s)
{
    sh_call(SH_SYS_WRITE0, s);
}

static inline size_t sh_strlen(const char *s)
{
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

/* mode: 1 = "rb", 5 = "wb" (ISO C fopen modes in semihosting order). */
static inline int sh_open(const char *path, int mode)
{
    uint32_t block[3] = {(uint32_t)(uintptr_t)path, (uint32_t)mode, (uint32_t)sh_strlen(path)};
    return sh_call(SH_SYS_OPEN, block);
}

/* Returns the number of bytes NOT read (0: all read). */
static inline int sh_read(int fd, void *buf, size_t len)
{
    uint32_t block[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)buf, (uint32_t)len};
    return sh_call(SH_SYS_READ, block);
}

/* Returns the number of bytes NOT written (0: all written). */
static inline int sh_write(int fd, const void *buf, size_t len)
{
    uint32_t block[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)buf, (uint32_t)len};
    return sh_call(SH_SYS_WRITE, block);
}

static inline int sh_close(int fd)
{
    uint32_t block[1] = {(uint32_t)fd};
    return sh_call(SH_SYS_CLOSE, block);
}

static inline int sh_cmdline(char *buf, size_t len)
{
    uint32_t block[2] = {(uint32_t)(uintptr_t)buf, (uint32_t)len};
    return sh_call(SH_SYS_GET_CMDLINE, block);
}

static inline void sh_exit(int code)
{
    uint32_t block[2] = {SH_ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    for (;;) {
        sh_call(SH_SYS_EXIT_EXTENDED, block);
    }
}

#endif /* MCUFORGE_SEMIHOST_H */
