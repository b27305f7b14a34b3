"""Long recordings into training utterances: word timings by forced alignment, cuts at pauses, timing files."""
