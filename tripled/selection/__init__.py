"""Stages score, warmup, select and refine: from the feature store to the distilled set and its card."""
