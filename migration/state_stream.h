/* The device-state stream: every registered vmstate section, written
 * self-describing (each section carries its field schema) so a reader can
 * check it against its own tables, and a dump tool can print any stream
 * without linking the devices. Used by save/restore and migration.
 *
 * Layout (little-endian):
 *   "MKVMSTAT" u32 stream_version
 *   per section: u8 1, str name, u32 instance, u32 version, u32 nfields,
 *                nfields x (str field, u8 type, u32 count), u32 len, data
 *   u8 0 (end)
 *   str = u16 length + bytes (no NUL), at most 255 bytes. */
#ifndef MIGRATION_STATE_STREAM_H
#define MIGRATION_STATE_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define STATE_STREAM_VERSION 1

/* Write all registered sections. Returns 0 or -errno. */
int state_stream_save(FILE *out);
/* Check the whole stream against the registered tables, then load every
 * section; nothing is applied unless the whole stream validates. Returns
 * 0, or -EINVAL with a message naming the section and field. */
int state_stream_load(const uint8_t *buf, size_t len, char *err, size_t errlen);
/* Print a stream using only its embedded schema. */
int state_stream_dump(const uint8_t *buf, size_t len, FILE *out, char *err, size_t errlen);

#endif
