"""Operations: request observation, admission and drain, the server, backups."""
