/*
 * mcf_state: a record that carries a model's trained state across a reset.
 *
 * Layout (little-endian, MCF_STATE_HEADER_SIZE = 52 bytes, then the state):
 *   0  "MCFS"                       magic
 *   4  uint16 version (2)           format version
 *   6  uint16 header size (52)
 *   8  32 bytes                     identity of the state: <NAME>_TRAIN_STATE_SHA256, the sha256 of
 *                                   the model file's sha256 and the trained state's layout
 *  40  uint32 state size            <NAME>_TRAIN_STATE_SIZE
 *  44  uint32 generation            which save this is (the application counts them)
 *  48  uint32 CRC-32                IEEE 802.3 (zlib's crc32) of bytes 0..47 and the state
 *  52  the state                    what <name>_train_state() points to
 *
 * mcf_state_unpack() writes nothing unless every check passes, so a record
 * from another model or build, or one torn by a reset during its write, leaves
 * the model's state as it was (its flash weights after <name>_init()).
 *
 * Power-fail safety with two slots: save generation g + 1 over the slot that
 * does not hold the newest valid record (mcf_state_newest() says which does),
 * so that a reset during the write, or a slot corrupted later, leaves the
 * previous generation in the other slot; at boot restore the newest valid one.
 * Cost: the CRC is a bitwise loop, 8 steps a byte, no table in flash.
 */
#include "mcuforge/kernels.h"

#define MCF_STATE_VERSION 2u
#define MCF_STATE_CRC_AT 48u

uint32_t mcf_crc32(uint32_t crc, const uint8_t *data, uint32_t size)
{
    uint32_t i;
    int bit;
    crc = ~crc;
    for (i = 0; i < size; ++i) {
        crc ^= data[i];
        for (bit = 0; bit < 8; ++bit) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

static void put_u16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    put_u16(p, v & 0xFFFFu);
    put_u16(p + 2, v >> 16);
}

static uint32_t get_u16(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

static uint32_t get_u32(const uint8_t *p)
{
    return get_u16(p) | (get_u16(p + 2) << 16);
}

int32_t mcf_state_pack(const uint8_t identity[32], uint32_t generation, const void *state, uint32_t state_size,
                       uint8_t *record, uint32_t record_size)
{
    const uint8_t *s = (const uint8_t *)state;
    uint32_t i, crc;
    if (record_size < MCF_STATE_HEADER_SIZE || record_size - MCF_STATE_HEADER_SIZE < state_size) {
        return MCF_STATE_ERR_SIZE;
    }
    record[0] = 'M';
    record[1] = 'C';
    record[2] = 'F';
    record[3] = 'S';
    put_u16(record + 4, MCF_STATE_VERSION);
    put_u16(record + 6, MCF_STATE_HEADER_SIZE);
    for (i = 0; i < 32; ++i) {
        record[8 + i] = identity[i];
    }
    put_u32(record + 40, state_size);
    put_u32(record + 44, generation);
    for (i = 0; i < state_size; ++i) {
        record[MCF_STATE_HEADER_SIZE + i] = s[i];
    }
    crc = mcf_crc32(0, record, MCF_STATE_CRC_AT);
    crc = mcf_crc32(crc, record + MCF_STATE_HEADER_SIZE, state_size);
    put_u32(record + MCF_STATE_CRC_AT, crc);
    return (int32_t)(MCF_STATE_HEADER_SIZE + state_size);
}

int mcf_state_check(const uint8_t identity[32], const uint8_t *record, uint32_t record_size, uint32_t state_size)
{
    uint32_t i, crc;
    if (record_size < MCF_STATE_HEADER_SIZE || record[0] != 'M' || record[1] != 'C' || record[2] != 'F' ||
        record[3] != 'S') {
        return MCF_STATE_ERR_MAGIC;
    }
    if (get_u16(record + 4) != MCF_STATE_VERSION || get_u16(record + 6) != MCF_STATE_HEADER_SIZE) {
        return MCF_STATE_ERR_VERSION;
    }
    if (get_u32(record + 40) != state_size || record_size - MCF_STATE_HEADER_SIZE < state_size) {
        return MCF_STATE_ERR_SIZE;
    }
    crc = mcf_crc32(0, record, MCF_STATE_CRC_AT);
    crc = mcf_crc32(crc, record + MCF_STATE_HEADER_SIZE, state_size);
    if (crc != get_u32(record + MCF_STATE_CRC_AT)) {
        return MCF_STATE_ERR_CRC;
    }
    for (i = 0; i < 32; ++i) {
        if (record[8 + i] != identity[i]) {
            return MCF_STATE_ERR_MODEL;
        }
    }
    return MCF_STATE_OK;
}

int mcf_state_unpack(const uint8_t identity[32], const uint8_t *record, uint32_t record_size, void *state,
                     uint32_t state_size)
{
    uint8_t *s = (uint8_t *)state;
    uint32_t i;
    const int status = mcf_state_check(identity, record, record_size, state_size);
    if (status != MCF_STATE_OK) {
        return status;
    }
    for (i = 0; i < state_size; ++i) {
        s[i] = record[MCF_STATE_HEADER_SIZE + i];
    }
    return MCF_STATE_OK;
}

uint32_t mcf_state_generation(const uint8_t *record)
{
    return get_u32(record + 44);
}

int mcf_state_newest(const uint8_t identity[32], const uint8_t *const records[], const uint32_t record_sizes[],
                     int count, uint32_t state_size, int status[])
{
    int i, best = -1;
    for (i = 0; i < count; ++i) {
        status[i] = records[i] == 0 ? MCF_STATE_ERR_MAGIC
                                    : mcf_state_check(identity, records[i], record_sizes[i], state_size);
        /* newer: ahead by less than half the counter's range, so that it may wrap around */
        if (status[i] == MCF_STATE_OK &&
            (best < 0 || (int32_t)(mcf_state_generation(records[i]) - mcf_state_generation(records[best])) > 0)) {
            best = i;
        }
    }
    return best;
}

const char *mcf_state_error(int status)
{
    switch (status) {
    case MCF_STATE_OK:
        return "ok";
    case MCF_STATE_ERR_SIZE:
        return "wrong size (another build of the model, or a short record)";
    case MCF_STATE_ERR_MAGIC:
        return "no state record";
    case MCF_STATE_ERR_VERSION:
        return "record format of another mcuforge version";
    case MCF_STATE_ERR_CRC:
        return "CRC mismatch (torn or corrupted write)";
    case MCF_STATE_ERR_MODEL:
        return "state of another model or build";
    default:
        return "unknown error";
    }
}
