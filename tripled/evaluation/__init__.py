"""Stage evaluate and `tripled restore`: metrics, tiled restoration and the per-task summary."""
