"""Evidence: BEIR evaluation, benchmarks (against ``seed_baseline``, the published script's
algorithm, which ships here and is also the tests' oracle) and ``verify`` against the published
fingerprint.

Fifth layer: it may use every layer below it (it benchmarks the server too); only the CLI is
above it.
"""
