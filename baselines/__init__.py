"""Baseline recommenders, one LightningModule per file, registered in benchmark.registry."""
