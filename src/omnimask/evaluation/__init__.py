"""Downstream evaluation: few-label fine-tuning and linear probing."""

from .classification import (
    Classifier,
    EvalConfig,
    compare_encoders,
    encode_dataset,
    few_label_subset,
    finetune_accuracy,
    linear_probe_accuracy,
)

__all__ = [
    "Classifier",
    "EvalConfig",
    "compare_encoders",
    "encode_dataset",
    "few_label_subset",
    "finetune_accuracy",
    "linear_probe_accuracy",
]
