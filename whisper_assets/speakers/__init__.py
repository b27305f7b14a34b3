"""Who speaks: speaker embeddings, clustering into speaker ids, and "who spoke when" in long recordings."""
