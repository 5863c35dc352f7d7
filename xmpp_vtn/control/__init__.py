"""What the running VTN serves its operators, beside the protocol: the XEP-0050 commands (a
slixmpp plugin). Each works through :class:`~xmpp_vtn.control.desk.OperatorDesk`, the narrow
interface the facade gives operators, never the facade's internals."""
