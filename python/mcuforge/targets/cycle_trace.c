/* QEMU TCG plugin of mcuforge's Cortex-M cycle model (mcuforge/tools/cycles.py).
 *
 * Counts, for every executed instruction of the guest's code range, how many
 * times it ran, how many times the next instruction executed was not the one
 * after it (a taken branch, or any other write of the PC) and how many of its
 * loads read the flash range. The counts are split into segments at every
 * read of the mark array [marks_lo, marks_hi) (the harness's mcuforge_mark(id)
 * reads mcuforge_marks[id] around `<name>_invoke` and, in a profiling build,
 * around every kernel call); a segment is labelled by the id of the mark that
 * opened it (-1 before the first) and written out when the next mark is read:
 *
 *     segment <k> <label>
 *     <pc hex> <executions> <taken> <flash loads>
 *
 * The pricing (the Cortex-M4 cycle table) is done in Python on these counts.
 *
 * Debian's QEMU 7.2 runs plugins but installs no qemu-plugin.h: the few API
 * functions used here are declared below as QEMU 7.2 (plugin API version 1)
 * defines them. Built at run time by mcuforge (cycles.build_plugin), never
 * shipped as a binary.
 *
 * Arguments: out=<file>,lo=<address>,hi=<address> (code range counted),
 *            flash_lo=<address>,flash_hi=<address>,marks_lo=<address>,marks_hi=<address>
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

/* ---- the QEMU 7.2 plugin API (include/qemu/qemu-plugin.h), as used ---- */
typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr,
                                          void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw,
                                      void *userdata);
_Bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

EXPORT int qemu_plugin_version = 1;

/* ---- counts: one slot per halfword of [lo, hi), plus one for "elsewhere" ---- */
static FILE *out;
static uint64_t lo, hi, flash_lo, flash_hi, marks_lo, marks_hi;
static size_t slots;
static uint64_t *executions, *taken, *flash_loads;
static uint32_t *touched;
static uint8_t *listed;
static size_t n_touched;
static long segment, label = -1;
static size_t last_slot = (size_t)-1;
static uint64_t last_end;

static size_t slot_of(uint64_t pc)
{
    return (pc >= lo && pc < hi) ? (size_t)((pc - lo) / 2) : slots - 1;
}

static void flush(void)
{
    size_t k;
    fprintf(out, "segment %ld %ld\n", segment, label);
    for (k = 0; k < n_touched; ++k) {
        const size_t s = touched[k];
        const uint64_t pc = s == slots - 1 ? 0xFFFFFFFFu : lo + 2 * (uint64_t)s;
        fprintf(out, "%llx %llu %llu %llu\n", (unsigned long long)pc, (unsigned long long)executions[s],
                (unsigned long long)taken[s], (unsigned long long)flash_loads[s]);
        executions[s] = taken[s] = flash_loads[s] = 0;
        listed[s] = 0;
    }
    n_touched = 0;
    segment++;
}

static void touch(size_t s)
{
    if (!listed[s]) {
        listed[s] = 1;
        touched[n_touched++] = (uint32_t)s;
    }
}

/* userdata: the instruction's address with its size (2 or 4) in the low bits' place: pc | (size == 4) */
static void on_exec(unsigned int vcpu_index, void *userdata)
{
    const uint64_t word = (uint64_t)(uintptr_t)userdata;
    const uint64_t pc = word & ~(uint64_t)1;
    const size_t s = slot_of(pc);
    (void)vcpu_index;
    if (last_slot != (size_t)-1 && pc != last_end) {
        touch(last_slot);
        taken[last_slot]++;
    }
    touch(s);
    executions[s]++;
    last_slot = s;
    last_end = pc + ((word & 1) ? 4 : 2);
}

static void on_load(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr, void *userdata)
{
    (void)vcpu_index;
    if (qemu_plugin_mem_is_store(info)) {
        return; /* registered for both (QEMU 7.2 reports no loads to a MEM_R registration) */
    }
    if (vaddr >= flash_lo && vaddr < flash_hi) {
        const size_t s = slot_of((uint64_t)(uintptr_t)userdata & ~(uint64_t)1);
        touch(s);
        flash_loads[s]++;
    } else if (vaddr >= marks_lo && vaddr < marks_hi) {
        flush();
        label = (long)(vaddr - marks_lo);
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    for (i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const uint64_t pc = qemu_plugin_insn_vaddr(insn);
        void *userdata = (void *)(uintptr_t)(pc | (qemu_plugin_insn_size(insn) == 4 ? 1u : 0u));
        qemu_plugin_register_vcpu_insn_exec_cb(insn, on_exec, QEMU_PLUGIN_CB_NO_REGS, userdata);
        qemu_plugin_register_vcpu_mem_cb(insn, on_load, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, userdata);
    }
}

static void at_exit_flush(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    flush();
    fclose(out);
}

static int parse(const char *arg, const char *key, uint64_t *value)
{
    const size_t n = strlen(key);
    if (strncmp(arg, key, n) != 0 || arg[n] != '=') {
        return 0;
    }
    *value = strtoull(arg + n + 1, NULL, 0);
    return 1;
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *path = NULL;
    int i;
    (void)info;
    for (i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else if (!(parse(argv[i], "lo", &lo) || parse(argv[i], "hi", &hi) ||
                     parse(argv[i], "flash_lo", &flash_lo) || parse(argv[i], "flash_hi", &flash_hi) ||
                     parse(argv[i], "marks_lo", &marks_lo) || parse(argv[i], "marks_hi", &marks_hi))) {
            fprintf(stderr, "cycle_trace: unknown argument '%s'\n", argv[i]);
            return -1;
        }
    }
    if (path == NULL || hi <= lo) {
        fprintf(stderr, "cycle_trace: needs out=<file>, lo=<address> and hi=<address> (lo < hi)\n");
        return -1;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        fprintf(stderr, "cycle_trace: cannot write %s\n", path);
        return -1;
    }
    slots = (size_t)((hi - lo) / 2) + 1;
    executions = calloc(slots, sizeof *executions);
    taken = calloc(slots, sizeof *taken);
    flash_loads = calloc(slots, sizeof *flash_loads);
    touched = calloc(slots, sizeof *touched);
    listed = calloc(slots, sizeof *listed);
    if (!executions || !taken || !flash_loads || !touched || !listed) {
        fprintf(stderr, "cycle_trace: out of memory\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit_flush, NULL);
    return 0;
}
