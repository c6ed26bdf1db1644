"""Data sets made offline for benchmarks and the search (nothing downloaded)."""
