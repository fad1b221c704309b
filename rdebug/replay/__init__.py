"""Deterministic record/replay: the log format, the recorder, the player, trace folders."""
