"""amber's stand-in for HMA's ``OpenMediaMatch`` package: just what HMA's own tests import,
each part building or calling amber (see README.md beside this package)."""
