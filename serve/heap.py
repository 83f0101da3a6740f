"""Keep freed heap memory in the process: glibc's `M_TOP_PAD`, set once when a model is loaded.

The numpy decoding loop allocates a new cache tensor per layer and step (the beams' reordered
self-attention keys/values, (B·K, H, t, Dh) float32: hundreds of KB to MBs at batch 32). glibc
returns the top of its heap to the kernel whenever more than its trim threshold is free, and the
next step's allocation faults the same pages in again. With `M_TOP_PAD` the heap keeps
`RETAINED_BYTES` beyond what is in use: measured on the demo model, batch 32, 4 beams, the
reordering went from 11-13 ms to 4-5 ms per 128 sentences (`MALLOC_TOP_PAD_` in the environment
has the same effect; bench/RESULTS-speed-changes.md). The cost: the process may keep up to that much freed
memory. Only glibc (Linux) has `mallopt`; elsewhere nothing changes. `KERAS_TRANSFORMER_TOP_PAD=0`
leaves glibc's default.
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
