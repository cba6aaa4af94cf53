import sys
from pathlib import Path

# The helper environments live next to the tests.
sys.path.insert(0, str(Path(__file__).parent))
