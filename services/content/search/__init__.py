"""Search over a community's posts and comments (docs/decisions/0039)."""
