"""Benchmarks of esms-analytics against baselines measured in the same run (``make bench``)."""
