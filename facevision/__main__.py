import sys

from facevision.cli import main

if __name__ == "__main__":  # not when a spawned process imports the main module again
    sys.exit(main())
