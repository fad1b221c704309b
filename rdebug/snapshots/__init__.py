"""Snapshots: machine state to bytes, in-memory checkpoints, qcow2 overlay files."""

#: Default memory budget for checkpoints (bytes of page data and tables).  Here, not in
#: `checkpoints`, so that naming it does not load numpy.
DEFAULT_BUDGET = 512 << 20
