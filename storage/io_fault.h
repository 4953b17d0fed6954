/* SPDX-License-Identifier: MIT */
/*
 * io_fault.h -- a fault-injecting I/O back end for tests (never in the shipped
 * library). It wraps every context the storage layer creates (io_set_wrapper)
 * and, when armed, fails the N-th write / sync / read with a chosen errno,
 * optionally after writing part of the buffer (a short write). It can also
 * simulate power loss: every byte written since a file's last successful
 * sync is reverted (or, with keep_percent, a random subset of 4 KiB pieces
 * survives: a torn write), as if the page cache had never reached the disk.
 */
#ifndef QUARRY_IO_FAULT_H
#define QUARRY_IO_FAULT_H

#include <stddef.h>
#include <stdint.h>

typedef struct io_fault_plan {
    int fail_write_at;  /* the N-th write after arming fails (0 = none) */
    int write_errno;    /* EIO, ENOSPC ... */
    size_t short_bytes; /* the failing write first writes this many bytes */
    int fail_sync_at;   /* the N-th sync fails */
    int sync_errno;
    int fail_read_at;   /* the N-th read fails */
    int read_errno;
    int sticky;         /* once failed, every later call of that kind fails too */
} io_fault_plan;

/* Wrap every I/O context created from now on (call before quarry_open). */
void io_fault_install(void);
/* Arm a plan (counters restart); disarm returns to pass-through. */
void io_fault_arm(const io_fault_plan *p);
void io_fault_disarm(void);
/* Writes / syncs / reads seen since arming, and faults injected. */
void io_fault_counts(int *writes, int *syncs, int *reads, int *faults);

/* Start recording pre-images of unsynced writes (for power loss). */
void io_fault_track(int on);
/*
 * Simulate power loss now: revert unsynced writes, newest first. keep_percent
 * (0..100) of the 4 KiB pieces survive, chosen by seed. Files end at their
 * synced size unless a surviving piece lies beyond it. Returns the number of
 * bytes reverted. The caller must then abandon the database without closing
 * it (e.g. _exit in a child process).
 */
uint64_t io_fault_power_loss(uint64_t seed, int keep_percent);

#endif
