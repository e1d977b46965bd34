import sys

from facevision.cli import main

sys.exit(main())
