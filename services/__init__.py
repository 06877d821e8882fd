"""clipstream: event-driven video ingestion into searchable CLIP embeddings."""
