"""Gateway: registers uploads (URI + business metadata) as `videos.uploaded` events."""
