"""``python -m xmpp_vtn`` runs the ``xmpp-vtn`` command."""
import sys

from .cli import main

sys.exit(main())
