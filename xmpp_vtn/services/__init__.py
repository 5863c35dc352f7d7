"""The OpenADR services, free of I/O: each takes a request and returns an :class:`Outcome`."""
from . import codes, lifecycle
from .dispatch import Dispatcher
from .handlers import HANDLER_NAMES, Handlers
from .outcome import (Delivered, Effect, Forget, HandedOut, NotImplementedService, Outcome, Polled, Push, Refusal, Registered,
                      Request, Route, ScheduleReport, UnscheduleReport, acknowledge, response)
from .registration import RegistrationService

__all__ = ["codes", "lifecycle", "Dispatcher", "Handlers", "HANDLER_NAMES", "NotImplementedService", "Outcome", "Push",
           "Refusal", "Request", "RegistrationService", "Route", "response", "acknowledge", "Effect", "Delivered",
           "Polled", "HandedOut", "Registered", "Forget", "ScheduleReport", "UnscheduleReport"]
