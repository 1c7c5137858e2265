"""Helpers for tests and benchmarks: things that stand in for what cannot run here."""
