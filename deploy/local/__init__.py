"""The local stack: a real Kafka broker from Maven Central jars and disparo's processes."""
