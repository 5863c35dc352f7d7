"""xmpp-vtn: an OpenADR 2.0b VTN that pushes to VENs over XMPP."""
from .runtime.component import PushFailed
from .errors import SchemaBundleError, SchemaError
from .runtime.stanzas import StreamFailed
from .vtn import VTNComponent

__version__ = "0.1.0"
__all__ = ["VTNComponent", "PushFailed", "StreamFailed", "SchemaError", "SchemaBundleError", "__version__"]
