"""Benchmark harnesses (run by hand, never by the test suite; figures go to docs/)."""
