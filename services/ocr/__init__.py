"""The on-screen text stage: words read on keyframes, stored for search and published on `videos.text`."""
