import sys

from nasassist_plugins.cli import main

sys.exit(main())
