"""xmpp-vtn: an OpenADR 2.0b VTN that pushes to VENs over XMPP."""
from .errors import SchemaBundleError, SchemaError

__version__ = "0.1.0"
__all__ = ["SchemaError", "SchemaBundleError", "__version__"]
