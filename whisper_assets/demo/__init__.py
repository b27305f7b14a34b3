"""The embedded demo: generated sources (speech, a review database, served recordings) and a tiny model."""
