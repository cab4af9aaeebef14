"""HMA's PostgreSQL storage: its tests reset the tables and check for leaked large
objects; amber keeps its rows in its own schema on the same server."""
