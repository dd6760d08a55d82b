"""Stage extract: ViT features of thumbnails and full-resolution complexity labels, cached by content,
on local processes or Ray, into the feature store."""
