"""Seeded fuzz campaigns against hostile input (docs/reliability.md).

Each module is one campaign with `campaign(n, seed) -> Tally`: `programs` (mutated
`.mt` programs through the checker), `mts` (mutated `.mts` files through `load`),
`structures` (bad systems through the neighbour search and a model), `cache`
(damaged kernel-cache entries through compile and run). `python -m fuzz.run` runs
them all, each in child processes under a memory limit, and prints the table;
`make fuzz` is the long run, tests/test_fuzz_campaigns.py a short seeded sample.
"""
