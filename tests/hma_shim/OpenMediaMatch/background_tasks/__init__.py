"""HMA's background tasks, which amber runs on demand: index builds and exchange fetches."""
