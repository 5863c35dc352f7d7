"""Reads the component stream's bytes ahead of slixmpp's parser, one stanza at a time, and
refuses a stanza too large for its sender before a single element of it is parsed.

slixmpp's parser turns every element of a stanza into two parser events and a tree node:
60,000 empty elements (240 KB) cost the VTN's event loop about 45 ms before any check of ours
could look at the result, and every other VEN waited for it. Counting bytes costs well under a
millisecond for the same stanza, so the gate counts first.

What makes counting exact: XMPP servers re-serialize every stanza they route. Prosody and
ejabberd escape ``<`` everywhere and forward no comments, processing instructions or CDATA
sections, so every ``<`` starts a tag. When a stretch of complete tags holds as many ``>`` as
``<`` (Prosody escapes ``>`` too), ``</`` counts its end tags, ``/>`` its empty elements, and
``<`` minus ``</`` its elements; the stanza ends at the end tag of its own name that brings the
depth back to zero. Where a stretch holds more ``>`` than ``<`` (ejabberd leaves ``>`` unescaped
in attribute values, as XML allows), its tags are read one by one, quote-aware: slower, and still
nothing is parsed. A stream that breaks the premise (a comment, say) is passed on untouched from
there on, and the checks after parsing still apply.

A refused stanza reaches the parser as its own start tag with one :data:`REFUSED` child that
says how large it was, so that the usual refusal (an iq error for a get or set) is answered
from the stanza's own id, sender and addressee.
"""
from __future__ import annotations

import logging
import re
from html import unescape
from typing import Callable

log = logging.getLogger("xmpp_vtn.component")

#: The marker a refused stanza carries instead of its content (``elements`` and ``bytes`` attributes).
REFUSED = "{urn:xmpp-vtn:gate}refused-unread"
#: Largest stanza held in memory whole, in bytes: a larger one is refused, however few its elements.
#: The largest OpenADR messages the quotas admit are about 170 KB (docs/servers.md).
MAX_STANZA_BYTES = 1024 * 1024

#: A start tag, quote-aware: its name (group 1) and "/" when the element is empty (group 2).
START_TAG = re.compile(rb"""<([^\s/>'"=<]+)(?:\s+[^\s/>'"=<]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*\s*(/?)>""")
_NOT_A_TAG = re.compile(rb"<[!?]")
# Any tag, quote-aware; the group is "/" for an empty element's. Possessive, so that it never
# backtracks over what it has read.
_TAG = re.compile(rb"""<(?:[^>"'/]|/(?!>)|"[^"]*"|'[^']*')*+(/?)>""")
_SPACE = b" \t\r\n"
_AFTER_NAME = b">" + _SPACE
# Longest stream header or stanza start tag waited for; past it the bytes are not what the gate
# reads, and go to the parser (which says what is wrong with them).
_MAX_START_TAG = 64 * 1024

#: ``accept(sender, elements)``: whether a stanza of that many elements from ``sender`` may be parsed.
Accept = Callable[[str, int], bool]
#: ``claim(stanza, head, elements)``: True when the caller handled the stanza from its bytes.
Claim = Callable[[bytes, int, int], bool]

_ATTRIBUTE = re.compile(rb"""([^\s=/>'"<]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def start_tag_attributes(tag: bytes) -> dict[str, str]:
    """The attributes of a start tag as the gate read it, values unescaped.

    >>> start_tag_attributes(b'<iq type="set" id="a&amp;b" to="v">')
    {'type': 'set', 'id': 'a&b', 'to': 'v'}
    """
    # findall builds the tuples in C; a value quoted one way leaves the other group empty.
    attributes = {name.decode("utf-8", "replace"): (double or single).decode("utf-8", "replace")
                  for name, double, single in _ATTRIBUTE.findall(tag)}
    if b"&" in tag:
        attributes = {name: unescape(value) for name, value in attributes.items()}
    return attributes


class _Stanza:
    """The stanza being read: where it starts in the buffer, its start tag, and the counts of
    ``buffer[begin:scanned]``, a stretch of complete tags (``scanned`` is at a "<")."""

    __slots__ = ("begin", "start_tag", "name", "closing", "sender", "scanned", "search", "lt",
                 "end_tags", "empty", "dropped", "refusing", "end")

    def __init__(self, begin: int, start_tag: bytes, name: bytes, search: int, end: int = -1):
        self.begin, self.start_tag, self.name, self.search = begin, start_tag, name, search
        self.closing = b"</" + name
        self.sender: str | None = None
        self.scanned = begin
        self.lt = self.end_tags = self.empty = 0
        self.dropped = 0            # bytes of it already let go (it is refused: see refusing)
        self.refusing = False
        self.end = end              # an empty element (<iq .../>) is complete with its start tag
        if end >= 0:
            self.lt = 1

    @property
    def elements(self) -> int:
        return self.lt - self.end_tags


class StanzaGate:
    """``feed(data)`` returns the bytes for the parser: ``data`` as it came, except that a stanza
    ``accept`` turns down (asked only past ``check_above`` elements, and possibly before the stanza
    is complete: a count it refuses must be refused for any larger count), or one over ``max_bytes``,
    is replaced by a small stand-in (see the module docstring). Bytes of an unfinished stanza are
    held back until it is complete, so a stanza is never half parsed.

    >>> gate = StanzaGate(lambda sender, elements: elements < 3)
    >>> gate.feed(b"<stream:stream xmlns:stream='s'><iq id='1'><a/><b/></iq>")
    b'<stream:stream xmlns:stream=\\'s\\'><iq id=\\'1\\'><refused-unread xmlns="urn:xmpp-vtn:gate" elements="3" bytes="24" /></iq>'
    """

    def __init__(self, accept: Accept, check_above: int = 0, max_bytes: int = MAX_STANZA_BYTES,
                 on_lost: Callable[[str], object] | None = None, claim: Claim | None = None,
                 flush: Callable[[bytes], object] | None = None,
                 on_oversized: Callable[[str, int], object] | None = None):
        self.accept = accept
        self.check_above = check_above
        self.max_bytes = max_bytes
        #: Told ``(sender, bytes read so far)`` of each stanza refused for ``max_bytes`` (``accept``
        #: is told of the others, by saying no).
        self.on_oversized = on_oversized
        #: ``claim(stanza, head, elements)`` is offered every accepted ``iq`` (``head``: the length
        #: of its start tag) and returns True when it took it: the parser never sees that stanza.
        #: Before each offer, what the gate accepted ahead of it goes to ``flush`` (the parser),
        #: so that stanzas are handled in the order they came.
        self.claim, self.flush = claim, flush
        #: Called when a stream the gate already dropped bytes of turns out not to be countable: the
        #: parser can no longer be kept in step, and the connection must be started again.
        self.on_lost = on_lost
        #: Stanzas refused unread, and their bytes, since the gate was made.
        self.refused = self.refused_bytes = 0
        self.reset()

    def reset(self) -> None:
        """A new stream: nothing held, the header still to come."""
        self._buffer = bytearray()
        self._header_read = False
        self._passing = False            # the stream cannot be counted: pass everything on
        self._lost = False               # ... and bytes were let go already: pass nothing on
        self._stanza: _Stanza | None = None

    @property
    def counting(self) -> bool:
        """Whether the gate still counts this stream (False once it could not, see the module)."""
        return not self._passing or not self._header_read

    def feed(self, data: bytes) -> bytes:
        """The bytes the parser may have of what has arrived so far (see the class docstring)."""
        if self._passing:
            return b"" if self._lost else data
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        emitted = position = 0                  # buffer[emitted:position]: read, accepted, not yet out
        while not self._passing:
            stanza = self._stanza
            if stanza is None:
                if position >= len(buffer):
                    break
                found = self._begin_stanza(position) if self._header_read else self._read_header(position)
                if found < 0:
                    break
                position = found
                continue
            end = self._stanza_end(stanza)
            if end < 0:
                break
            if stanza.refusing:
                out.append(buffer[emitted:stanza.begin])
                out.append(self._stand_in(stanza, end))
                emitted = end
            elif self.claim is not None and stanza.name == b"iq":
                if emitted < stanza.begin:
                    out.append(buffer[emitted:stanza.begin])
                    emitted = stanza.begin
                if out and self.flush is not None:
                    self.flush(b"".join(out))
                    out.clear()
                if self.claim(bytes(buffer[stanza.begin:end]), len(stanza.start_tag), stanza.elements):
                    emitted = end
            position = end
            self._stanza = None
        if self._passing:
            if not self._lost:
                out.append(buffer[emitted:])
            buffer.clear()
            self._stanza = None
            return b"".join(out)
        stanza = self._stanza
        keep = position if stanza is None else stanza.begin
        out.append(buffer[emitted:keep])
        if stanza is not None:
            if stanza.refusing:                 # what has been counted of it need not be held
                stanza.dropped += stanza.scanned - stanza.begin
                keep = stanza.scanned
            stanza.begin, stanza.scanned, stanza.search = 0, stanza.scanned - keep, max(stanza.search - keep, 0)
        del buffer[:keep]
        return b"".join(out)

    # -- between stanzas ---------------------------------------------------------------------------

    def _read_header(self, position: int) -> int:
        """Past the XML declaration and the stream's start tag, or -1 to wait for more bytes."""
        buffer = self._buffer
        position = _skip_space(buffer, position)
        if buffer.startswith(b"<?", position):
            end = buffer.find(b"?>", position)
            if end < 0:
                return self._wait(len(buffer) - position)
            position = _skip_space(buffer, end + 2)
        match = START_TAG.match(buffer, position)
        if match is None:
            return self._wait(len(buffer) - position)
        self._header_read = True
        return match.end()

    def _begin_stanza(self, position: int) -> int:
        """Past whitespace and any empty stanza; or at the start of a stanza, now :attr:`_stanza`;
        or -1 to wait for more bytes."""
        buffer = self._buffer
        position = _skip_space(buffer, position)        # whitespace keepalives go on as they are
        if position == len(buffer):
            return position
        if buffer.startswith(b"</", position):
            self._passing = True                        # the stream's end: nothing more to count
            return position
        if buffer[position] != 0x3C or _NOT_A_TAG.match(buffer, position):
            self._stop_counting("text, a comment or a processing instruction between stanzas")
            return position
        match = START_TAG.match(buffer, position)
        if match is None:
            return self._wait(len(buffer) - position)
        if not match.group(2):                          # not an empty stanza such as <presence .../>
            self._stanza = _Stanza(position, match.group(0), match.group(1), match.end())
        elif self.claim is not None and match.group(1) == b"iq":  # <iq type="result" .../>: offered too
            self._stanza = _Stanza(position, match.group(0), match.group(1), match.end(), end=match.end())
        return match.end()

    def _wait(self, pending: int) -> int:
        if pending > _MAX_START_TAG:
            self._stop_counting("a start tag longer than any server sends")
        return -1

    # -- one stanza ---------------------------------------------------------------------------------

    def _stanza_end(self, stanza: _Stanza) -> int:
        """Where the stanza ends in the buffer, or -1 to wait for more bytes. Whether it is refused
        is decided on the way, as soon as what has been counted says so."""
        if stanza.end >= 0:
            return stanza.end
        buffer, closing = self._buffer, stanza.closing
        while True:
            # Not before what is counted: no end tag there is left to look at.
            candidate = buffer.find(closing, max(stanza.search, stanza.scanned))
            if candidate < 0 or candidate + len(closing) >= len(buffer):
                # Count up to the last complete tag, so that no byte is counted twice and a
                # refusal is known before the stanza is complete: its bytes need not be held.
                last = buffer.rfind(b"<", stanza.scanned)
                if last > stanza.scanned and not self._count(stanza, last):
                    return -1
                self._check(stanza)
                return -1
            stanza.search = candidate + 1
            if buffer[candidate + len(closing)] not in _AFTER_NAME:
                continue                                # </iqx>: another name that starts the same
            if not self._count(stanza, candidate):
                return -1
            if stanza.lt - 2 * stanza.end_tags - stanza.empty != 1:
                continue                                # the end tag of a nested namesake
            end = buffer.find(b">", candidate)
            if end < 0:
                return -1
            self._check(stanza)
            return end + 1

    def _count(self, stanza: _Stanza, upto: int) -> bool:
        """Add ``buffer[scanned:upto]`` to the counts; False when that stretch shows the stream
        cannot be counted (and the gate has stopped counting it)."""
        buffer, start = self._buffer, stanza.scanned
        lt = buffer.count(b"<", start, upto)
        countable = _NOT_A_TAG.search(buffer, start, upto) is None
        if countable and lt == buffer.count(b">", start, upto):
            empty = buffer.count(b"/>", start, upto)
        elif countable:
            # More ">" than tags: some stand in attribute values (ejabberd leaves them unescaped
            # there) or text. Read the tags one by one, quote-aware: slower, still no parsing.
            ends = _TAG.findall(buffer, start, upto)
            countable = len(ends) == lt
            empty = ends.count(b"/")
        if not countable:
            if stanza.dropped:
                log.error("the component stream carries XML the stanza gate cannot count, after part of "
                          "a refused stanza was let go; the connection is started again")
                self._passing = self._lost = True
                if self.on_lost is not None:
                    self.on_lost("the stanza gate lost its place in the stream")
            else:
                self._stop_counting("a comment, a CDATA section or a processing instruction in a stanza")
            return False
        stanza.lt += lt
        stanza.end_tags += buffer.count(b"</", start, upto)
        stanza.empty += empty
        stanza.scanned = upto
        return True

    def _check(self, stanza: _Stanza) -> None:
        """Decide, from what has been counted, whether the stanza is refused (it stays refused)."""
        if stanza.refusing:
            return
        size = stanza.dropped + len(self._buffer) - stanza.begin
        if size > self.max_bytes:
            stanza.refusing = True
            if self.on_oversized is not None:
                self.on_oversized(self._sender(stanza), size)
        elif stanza.elements > self.check_above and not self.accept(self._sender(stanza), stanza.elements):
            stanza.refusing = True

    def _stand_in(self, stanza: _Stanza, end: int) -> bytes:
        """The refused stanza as the parser gets it: its start tag and the :data:`REFUSED` marker."""
        size = stanza.dropped + end - stanza.begin
        self.refused += 1
        self.refused_bytes += size
        return (stanza.start_tag + b'<refused-unread xmlns="urn:xmpp-vtn:gate" elements="'
                + str(stanza.elements).encode() + b'" bytes="' + str(size).encode() + b'" /></'
                + stanza.name + b">")

    @staticmethod
    def _sender(stanza: _Stanza) -> str:
        if stanza.sender is None:
            stanza.sender = start_tag_attributes(stanza.start_tag).get("from", "")
        return stanza.sender

    def _stop_counting(self, why: str) -> None:
        # The held bytes go to the parser unchanged; the checks after parsing still apply.
        log.warning("the stanza gate stops counting this stream (%s); stanzas are checked after parsing", why)
        self._passing = True


def _skip_space(buffer: bytearray, position: int) -> int:
    while position < len(buffer) and buffer[position] in _SPACE:
        position += 1
    return position
