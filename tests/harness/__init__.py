"""Real infrastructure servers (nats-server, Redis, PostgreSQL) for the integration tests."""
