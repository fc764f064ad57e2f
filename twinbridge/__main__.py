import sys

from twinbridge.cli import main

sys.exit(main())
