"""Unit tests of the emulated PC devices, against a FakeContext."""
