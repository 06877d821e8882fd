"""Media library: read and picture videos — sources, probe, shot detection, segments, decoding, keyframes."""
