"""Vector stores: one protocol (`base.VectorStore`), an embedded Qdrant Edge shard and a Qdrant server."""
