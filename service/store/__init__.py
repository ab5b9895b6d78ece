"""Vector stores: the `base.VectorStore` protocol, embedded Qdrant Edge, Qdrant server."""
