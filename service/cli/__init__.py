"""`citeline`, the command line: talks to a running service over its HTTP API only (it loads
nothing of the server, so it starts fast and runs anywhere the API is reachable)."""
