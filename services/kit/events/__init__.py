"""The event backbone: CloudEvents envelopes over NATS JetStream, a transactional outbox and
its relay, durable consumers with an inbox, and a dead-letter stream.

See docs/decisions/ for the subject scheme, tracing across the hop and the retry policy.
"""
