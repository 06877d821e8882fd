"""CLIP towers: loading real checkpoints, in-graph preprocessing, and the seeded test model."""
