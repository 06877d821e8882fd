"""Near-duplicates at ingest: temporal evidence from segment vectors, published on `videos.duplicates`."""
