"""The _icount C extension: an empty module; its functions are called through ctypes."""
