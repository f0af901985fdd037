"""Benchmarks: each ``bench_*.py`` module has a ``main()`` that prints its table and goal checks."""
