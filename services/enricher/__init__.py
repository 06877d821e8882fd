"""Enricher: faust-streaming app with tables; tracks per-upload completion and emits `videos.indexed`."""
