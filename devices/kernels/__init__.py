"""Kernels: one implementation of an op per device kind, registered in `registry`.

Importing this package registers every built-in kernel.

Floating-point exceptions inside kernels (a division by zero, an overflow) give inf and NaN
silently, as TensorFlow's kernels do (`af.check_numerics` and `add_check_numerics_ops` are
how a program asks to be told): NumPy's RuntimeWarnings raised from these modules are
ignored, through a warnings filter on their module names only (the program's own NumPy
warnings are left alone, and no per-call `np.errstate` is paid).
"""

import warnings

from devices.kernels import (  # noqa: F401  (imported to register their kernels)
    accumulator,  # accumulators (issue 15)
    array,
    array_extra,  # searchsorted, histogram, unravel_index, ... (session 9)
    control_flow,
    conv,
    dataset,  # af.data iterators (issue 15)
    debug,
    fused,
    image_boxes,  # boxes and colour (issue 13, session 7)
    image_io,  # read_file, decode_png/jpeg (issue 13)
    image_resize,  # bicubic and area resizes (session 8)
    index,
    io,
    linalg,
    lookup,  # lookup tables (issue 13, session 7)
    math,
    matrix,  # matrix solves, determinants, band part, cross; bincount, setdiff1d, MirrorPad
    nn,
    parsing,  # TFRecord / Example (session 7 io): parse_example, decode_raw
    partition,
    pyfunc,
    queue,  # queues (issue 15)
    random,
    readers,  # TFRecord / Example (session 7 io): TFRecordReader, TextLineReader, ...
    reduction,
    registry,
    sampling,
    scan_sort,
    segment,
    sendrecv,
    sparse_ops,  # sparse-tensor index bookkeeping (session 9)
    state,
    strings,  # string ops (issue 13, session 7)
    structural,
    summary,
    trig,
)


def quiet_kernel_warnings() -> None:
    """Ignore NumPy's RuntimeWarnings raised from kernel modules (done at import)."""
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"devices\.kernels\.")


quiet_kernel_warnings()

# --- s9api: kernels of the bit, CTC and argmax-pooling, string-hash and sampling ops ---
from devices.kernels import bitwise, ctc, random_more, strings_hash  # noqa: E402,F401
