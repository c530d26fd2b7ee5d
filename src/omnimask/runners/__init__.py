"""Runners behind the recipe scripts: pretraining (:mod:`.pretrain`, every ``recipes/*.py`` but one)
and supervised fine-tuning (:mod:`.finetune`, ``recipes/finetune.py``), with what they share in
:mod:`.common` (data sections, datasets, the command-line ``main`` and its exit codes)."""
