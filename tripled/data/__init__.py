"""Stage prepare, and the files every later stage reads: image decoding, dataset layouts, synthetic
degradations, the sample index, safe zarr stores and the distilled set."""
