"""Statistical helpers shared by the sampler tests (TESTING.md, protocol P2)."""

from .discrete import empirical, gtest_pvalue, tv_distance, tv_null_quantile

__all__ = ["empirical", "gtest_pvalue", "tv_distance", "tv_null_quantile"]
