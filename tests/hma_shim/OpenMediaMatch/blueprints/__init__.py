"""HMA's blueprints: the helpers its tests import (``hashing``, ``matching``)."""
