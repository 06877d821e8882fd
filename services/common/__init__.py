"""What every service shares: settings, message contracts, Kafka I/O, telemetry, health, CLIP, Milvus."""
