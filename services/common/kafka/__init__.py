"""Kafka I/O shared by every confluent-kafka based service: configs, topics, publishing, processing loop."""
