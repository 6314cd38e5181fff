/* crc32c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
 * Kafka record batches v2 and of Weir's own on-disk records.
 *
 * crc32c_update() picks the SSE4.2 implementation when the CPU has it and the
 * table-driven one otherwise; both are exported so tests can check each against
 * known vectors. Chaining works: crc32c_update(crc32c_update(0, a), b) equals the
 * CRC of a followed by b. The standard check value: CRC of "123456789" is
 * 0xE3069283. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len);
/* Only call when crc32c_hw_available(). */
uint32_t crc32c_hw(uint32_t crc, const void *data, size_t len);
bool crc32c_hw_available(void);
