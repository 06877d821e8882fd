"""Embedder: `videos.segments` -> CLIP image embeddings via Triton -> `videos.embeddings`."""
