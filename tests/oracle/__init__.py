"""Test oracles: slow, obviously right implementations the real ones are checked against."""
