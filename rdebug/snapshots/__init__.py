"""Snapshots: machine state to bytes, in-memory checkpoints, qcow2 overlay files."""
