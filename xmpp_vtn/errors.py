"""Exceptions raised by xmpp_vtn."""


class SchemaError(ValueError):
    """An OpenADR document is not well-formed, not allowed, or not valid against the 2.0b XSD.

    The message names the line, the element path and what was expected, for example::

        line 7: /oadrPayload/oadrSignedObject/oadrCreatedEvent/eiCreatedEvent/venID:
        Element '{...}venID': This element is not expected. Expected is ( {...}eiResponse ).
    """

    def __init__(self, message: str, line: int | None = None, path: str | None = None):
        super().__init__(message)
        self.line = line
        self.path = path


class SchemaBundleError(RuntimeError):
    """The bundled OpenADR 2.0b XSD files are missing or do not match the manifest.

    The message says which command installs them.
    """
