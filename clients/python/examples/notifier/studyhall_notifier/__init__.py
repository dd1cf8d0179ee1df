"""An example built on the Studyhall consumer kit: care signals to signed HTTP webhooks.

See examples/notifier/README.md.
"""
