"""Analysis: test-set metrics, statistics across runs, reports and figures."""
