"""Keep freed heap memory in the process: glibc's `M_TOP_PAD`, set by the programs that decode.

The numpy decoding loop allocates new cache tensors every step (the beams' reordered self-attention
keys/values: hundreds of KB to MBs at batch 32). glibc returns the top of its heap to the kernel
whenever more than its trim threshold is free, and the next step faults the same pages in again;
keeping `RETAINED_BYTES` beyond what is in use removes that cost (bench/RESULTS-speed-changes.md).
It changes the whole process's allocator, so the entry points that decode call it (the translate,
evaluate and serve commands), never a library import or a model's constructor. Only glibc (Linux)
has `mallopt`; elsewhere nothing changes. `KERAS_TRANSFORMER_TOP_PAD=0` leaves glibc's default.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

RETAINED_BYTES = 64 << 20  # freed heap memory kept, bytes
M_TOP_PAD = -2  # glibc malloc.h
_done = False


def retain_freed_heap() -> bool:
    """Sets glibc's M_TOP_PAD to `RETAINED_BYTES` (or `KERAS_TRANSFORMER_TOP_PAD` bytes) once per
    process. Returns True when the setting took effect."""
    global _done
    if _done:
        return True
    try:
        value = int(os.environ.get("KERAS_TRANSFORMER_TOP_PAD", RETAINED_BYTES))
    except ValueError:
        return False
    if value <= 0:
        return False
    name = ctypes.util.find_library("c")
    if not name or "libc.so" not in name:  # glibc only (musl, macOS and Windows have no mallopt)
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _done = mallopt(M_TOP_PAD, min(value, 2**31 - 1)) == 1
    return _done
