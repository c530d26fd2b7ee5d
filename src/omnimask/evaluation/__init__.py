"""Downstream evaluation: kNN, linear probes, few-label fine-tuning and cross-modal retrieval."""

from .classification import (
    Classifier,
    EvalConfig,
    encode_dataset,
    extract_features,
    few_label_subset,
    finetune_accuracy,
    finetune_classifier,
    linear_probe_accuracy,
    logistic_probe_accuracy,
)
from .finetune_grid import DEFAULT_GRID_LRS, best_cell, finetune_grid
from .knn import knn_accuracy, knn_predict
from .protocol import REPORT_METRICS, compare_encoders, random_encoder
from .report import format_report, report_gains
from .retrieval import compare_retrieval, masked_token_accuracy, pooled_features, retrieval_recall
from .stats import mean_std

__all__ = [
    "Classifier",
    "DEFAULT_GRID_LRS",
    "EvalConfig",
    "REPORT_METRICS",
    "best_cell",
    "compare_encoders",
    "random_encoder",
    "encode_dataset",
    "extract_features",
    "few_label_subset",
    "finetune_accuracy",
    "finetune_classifier",
    "finetune_grid",
    "format_report",
    "report_gains",
    "knn_accuracy",
    "knn_predict",
    "linear_probe_accuracy",
    "logistic_probe_accuracy",
    "mean_std",
    "retrieval_recall",
    "compare_retrieval",
    "masked_token_accuracy",
    "pooled_features",
]
