"""Benchmarks: numbers for the README and issue notes, never timed assertions."""

# The factor key of cases the benchmarks create (bench_load hands it to its bot process).
BENCH_FACTOR_SECRET = "bench-factor-key-0123456789"
