"""TripleD: distribution-aware dataset distillation for efficient image restoration."""
