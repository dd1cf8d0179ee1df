"""Studyhall's consumer kit.

- `studyhall_consumer.cloudevents`: the CloudEvents + protobuf decoder (protobuf only).
- `studyhall_consumer.catalogue`: streams and subjects of every event, from the AsyncAPI
  catalogue the kit ships (a copy of docs/asyncapi.json).
- `studyhall_consumer.subscriber`: faststream batch pull subscribers with typed handlers
  (needs the `faststream` extra).

This package imports none of them, so the decoder never pulls faststream in.
"""
