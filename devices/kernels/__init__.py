"""Kernels: one implementation of an op per device kind, registered in `registry`.

Importing this package registers every built-in kernel.
"""

from devices.kernels import (  # noqa: F401  (imported to register their kernels)
    accumulator,  # accumulators (issue 15)
    array,
    control_flow,
    conv,
    dataset,  # af.data iterators (issue 15)
    debug,
    fused,
    image_boxes,  # boxes and colour (issue 13, session 7)
    image_io,  # read_file, decode_png/jpeg (issue 13)
    index,
    io,
    linalg,
    lookup,  # lookup tables (issue 13, session 7)
    math,
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
    state,
    strings,  # string ops (issue 13, session 7)
    structural,
    summary,
    trig,
)
