"""Downstream evaluation: few-label fine-tuning, linear probing and cross-modal retrieval."""

from .classification import (
    Classifier,
    EvalConfig,
    compare_encoders,
    encode_dataset,
    few_label_subset,
    finetune_accuracy,
    linear_probe_accuracy,
)
from .retrieval import compare_retrieval, masked_token_accuracy, pooled_features, retrieval_recall

__all__ = [
    "Classifier",
    "EvalConfig",
    "compare_encoders",
    "encode_dataset",
    "few_label_subset",
    "finetune_accuracy",
    "linear_probe_accuracy",
    "retrieval_recall",
    "compare_retrieval",
    "masked_token_accuracy",
    "pooled_features",
]
