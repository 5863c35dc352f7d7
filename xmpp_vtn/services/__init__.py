"""The OpenADR services, free of I/O: each takes a request and returns an :class:`Outcome`."""
from .dispatch import Dispatcher
from .handlers import HANDLER_NAMES, Handlers
from .outcome import NotImplementedService, Outcome, Push, Refusal, Request, response
from .registration import RegistrationService

__all__ = ["Dispatcher", "Handlers", "HANDLER_NAMES", "NotImplementedService", "Outcome", "Push", "Refusal",
           "Request", "RegistrationService", "response"]
