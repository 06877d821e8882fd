"""The gateway's routers, one per concern: registration (URIs, batches), uploads (bytes through the
gateway), status (one upload, listings), lifecycle (delete, patch), webhooks, multipart (direct uploads)."""
