"""Views of posts: ContentViewed once per member, post and local day (docs/decisions/0040)."""
