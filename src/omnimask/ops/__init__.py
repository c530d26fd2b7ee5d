"""Kernels shared by a modality and the modality-free parts (plain PyTorch): farthest point
sampling, kNN grouping and the Chamfer distance (:mod:`.geometry`)."""
