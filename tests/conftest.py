import sys
from pathlib import Path

# tests import the shared oracle helper as `from oracle import ...`
sys.path.insert(0, str(Path(__file__).parent))
