"""Evidence: BEIR evaluation, benchmarks (with the published script's algorithm as a baseline)
and ``verify`` against the published fingerprint."""
