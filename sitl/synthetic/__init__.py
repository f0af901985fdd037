"""The synthetic camera world: a port's water, land and traffic, rendered and streamed as H.264
over RTP, and the detector trained on it."""
