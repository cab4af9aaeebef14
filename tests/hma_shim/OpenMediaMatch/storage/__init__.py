"""HMA's storage package: only what its tests import (``postgres``)."""
