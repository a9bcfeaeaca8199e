"""The synthetic city the demo, the tests and the benchmarks run on."""
