"""Decoder: `videos.uploaded` -> PyAV probe + keyframes -> `videos.probed`, `videos.segments`."""
