"""``python -m xmpp_vtn`` runs the ``xmpp-vtn`` command."""
import sys

from .ops.cli import main

sys.exit(main())
