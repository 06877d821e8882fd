"""The local stack: real Kafka, Triton and Milvus Lite on loopback, plus the services, started by PID."""
