"""Indexer: `videos.embeddings` -> idempotent Milvus upserts -> `videos.segments.indexed` acks."""
