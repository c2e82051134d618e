"""Stage 2: the typed model of a swarm spec (pydantic), built from a located document."""
