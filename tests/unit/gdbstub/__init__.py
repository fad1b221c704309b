"""Unit tests of the GDB remote protocol stub (rdebug.gdbstub), with a FakeTarget."""
