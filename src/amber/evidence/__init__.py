"""The evidence vault: preserved originals, the custody log and its signed checkpoints."""
