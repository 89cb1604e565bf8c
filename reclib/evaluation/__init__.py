"""Metrics and the fixed evaluation protocols."""

from .beyond import catalogue_coverage, novelty
from .diversity import intra_list_diversity
from .metrics import (RANKING_METRICS, hit_rate_at_k, hits_from_lists, mae, map_at_k,
                      mrr_at_k, ndcg_at_k, precision_at_k, ranking_metrics, recall_at_k, rmse)
from .protocols import RatingResult, evaluate_ranking, evaluate_ratings
from .sampled import SampledMetricWarning, evaluate_sampled_ranking

__all__ = ["rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k",
           "hit_rate_at_k", "mrr_at_k", "catalogue_coverage", "novelty", "intra_list_diversity", "ranking_metrics",
           "hits_from_lists", "RANKING_METRICS", "evaluate_ratings", "evaluate_ranking",
           "evaluate_sampled_ranking", "SampledMetricWarning", "RatingResult"]
