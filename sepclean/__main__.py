import sys

from sepclean.cli import main

sys.exit(main())
