"""Moderation: a community's keyword rules, checked when posts and comments are written
(docs/decisions/0041)."""
