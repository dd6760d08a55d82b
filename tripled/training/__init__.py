"""Stage train: the restoration architectures, the curriculum, batch plans, checkpoints and the loop."""
