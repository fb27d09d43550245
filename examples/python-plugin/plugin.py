#!/usr/bin/python3
"""A PeerNet plugin in Python 3, standard library only.

It speaks the plugin protocol of docs/plugin-protocol.md directly: the
handshake line on stdout, then the call channel on descriptor 3. It serves:

  py.echo   returns its arguments, after the configured "prefix"
  py.relay  calls a handle on another peer through the node and returns the
            answer; the arguments are JSON: {"peer": "pn1...", "handle":
            "...", "args": "..."}
  py.slow   waits the number of milliseconds in its arguments, unless the
            caller's deadline passes or the caller cancels first

The plugin block's config may set {"prefix": "..."}. On SIGTERM, or when the
node retires the channel, it finishes its running calls and exits with
status 0.
"""

import base64
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

VERSION = "1.0.0"
HANDLES = ("py.echo", "py.relay", "py.slow")

# --- The protocol's constants (docs/plugin-protocol.md) ----------------------

MAGIC_COOKIE_KEY = "PEERNET_PLUGIN"
MAGIC_COOKIE_VALUE = "8f2c61d7a4b94e0b9c5e3a17d06fb2e4c1a98d35e7b04f6a"
PROTOCOL_VERSION = 2
CHANNEL_FD = 3

CALL, REPLY, SEND, CANCEL, PING, PONG, GOAWAY = range(1, 8)
GOAWAY_REPLACED = 3

OK, NO_SUCH_HANDLE, FORBIDDEN, HANDLER_ERROR, HANDLER_CRASHED = 0, 1, 2, 3, 4
UNAVAILABLE, OVERLOADED, DEADLINE_EXCEEDED, TOO_LARGE = 5, 6, 7, 8
STATUS_NAMES = {
    0: "ok", 1: "no_such_handle", 2: "forbidden", 3: "handler_error",
    4: "handler_crashed", 5: "unavailable", 6: "overloaded",
    7: "deadline_exceeded", 8: "too_large", 64: "not_connected",
    65: "connection_lost", 66: "canceled", 67: "bad_request",
    68: "not_trusted",
}

ZERO_KEY = bytes(32)
KEY_SIZE = 32
MAX_HANDLE = 255
MAX_TEXT = 4096
# Until configure says otherwise, the node may send up to the protocol's
# largest message size.
MAX_MESSAGE_SIZE_LIMIT = 64 << 20
OVERHEAD = 14 + MAX_HANDLE + KEY_SIZE  # the largest call header and the key
GRACE = 3.0  # seconds running calls get when the plugin stops


# --- Logging: hclog's JSON lines on stderr, which the node re-logs ----------

LEVELS = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4}
LOG_LEVEL = LEVELS.get(os.environ.get("PEERNET_PLUGIN_LOG_LEVEL", "info"), 2)
log_lock = threading.Lock()


def log(level, message, **fields):
    if LEVELS[level] < LOG_LEVEL:
        return
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%06dZ" % (now % 1 * 1e6)
    entry = {"@level": level, "@message": message, "@timestamp": stamp}
    entry.update({k: str(v) for k, v in fields.items()})
    line = json.dumps(entry) + "\n"
    with log_lock:
        sys.stderr.write(line)
        sys.stderr.flush()


# --- PeerID text form (docs/protocol.md §6.1) --------------------------------

B32 = "abcdefghijklmnopqrstuvwxyz234567"
CHECKSUM_PREFIX = b"peernet peer id checksum v1\x00"


def peer_id_text(key):
    checksum = hashlib.sha256(CHECKSUM_PREFIX + key).digest()[:4]
    return "pn1" + base64.b32encode(key + checksum).decode().lower().rstrip("=")


def parse_peer_id(text):
    s = text.strip(" \t\r\n")
    s = "".join(c.lower() if "A" <= c <= "Z" else c for c in s)
    if not s.startswith("pn1"):
        raise ValueError("a PeerID starts with pn1")
    s = s[3:]
    if len(s) != 58:
        raise ValueError("a PeerID is 61 characters long")
    if any(c not in B32 for c in s):
        raise ValueError("a PeerID has a character outside its alphabet")
    if B32.index(s[-1]) & 3:
        raise ValueError("a PeerID's last character is not canonical")
    raw = base64.b32decode(s.upper() + "======")
    key, checksum = raw[:32], raw[32:]
    if hashlib.sha256(CHECKSUM_PREFIX + key).digest()[:4] != checksum:
        raise ValueError("PeerID checksum mismatch (a mistyped character?)")
    if key == ZERO_KEY:
        raise ValueError("the zero key is not a PeerID")
    return key


# --- Errors a handler raises or a callback returns ---------------------------

class CallError(Exception):
    """An outcome other than ok: a status and the text that goes with it."""

    def __init__(self, status, text=""):
        super().__init__(text)
        self.status = status
        self.text = text

    def __str__(self):
        name = STATUS_NAMES.get(self.status, str(self.status))
        return name + (": " + self.text if self.text else "")


class Canceled(Exception):
    """The caller gave up on the call (the node sent cancel)."""


# --- One incoming call or send -----------------------------------------------

class Request:
    def __init__(self, call_id, caller, handle, args, timeout_ms):
        self.id = call_id  # 0 for a send
        self.caller = caller  # the verified peer's 32-byte key
        self.handle = handle
        self.args = args
        # The deadline starts when the message arrives.
        self.deadline = time.monotonic() + timeout_ms / 1000 if timeout_ms else None
        self.canceled = threading.Event()
        self.wakers = set()  # events of callbacks waiting on its behalf

    def cancel(self):
        self.canceled.set()
        for event in list(self.wakers):
            event.set()

    def remaining(self):
        """Seconds left before the deadline, or None without one."""
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()

    def wait(self, seconds):
        """Sleeps for seconds unless the call is canceled (Canceled) or its
        deadline passes first (CallError deadline_exceeded)."""
        left = self.remaining()
        if left is not None and left < seconds:
            if self.canceled.wait(max(left, 0)):
                raise Canceled()
            raise CallError(DEADLINE_EXCEEDED)
        if self.canceled.wait(seconds):
            raise Canceled()


# --- The channel -------------------------------------------------------------

class Channel:
    """The plugin's end of the call channel: reads messages, runs handlers
    in threads, writes replies, and makes the plugin's own calls."""

    def __init__(self, sock, serve, on_close):
        self.sock = sock
        self.on_close = on_close
        self.serve = serve  # serve(request) -> bytes, for the node's calls
        self.write_lock = threading.Lock()
        self.lock = threading.Lock()
        self.max_size = MAX_MESSAGE_SIZE_LIMIT
        self.next_id = 0
        self.pending = {}  # our call id -> [event, status, body]
        self.running = {}  # node's call id -> Request
        self.incoming = 0  # node's calls and sends running here
        self.retiring = False  # we sent goaway replaced
        self.retired = False  # the node sent goaway replaced
        self.closed = threading.Event()

    # Writing.

    def write(self, data):
        try:
            with self.write_lock:
                self.sock.sendall(data)
        except OSError:
            self.close()

    def reply(self, call_id, status, body):
        self.write(struct.pack(">IBQB", 10 + len(body), REPLY, call_id, status) + body)

    def goaway_locked(self):
        self.retiring = True
        self.write(struct.pack(">IBB", 2, GOAWAY, GOAWAY_REPLACED))

    # The plugin's own calls: callbacks to peers through the node.

    def call(self, req, peer, handle, args):
        """Calls handle on peer on behalf of the running request req, within
        its deadline; cancels the callback if req is canceled."""
        h = handle.encode()
        if not 1 <= len(h) <= MAX_HANDLE:
            raise CallError(67, "bad handle")
        if len(args) > self.max_size:
            raise CallError(TOO_LARGE, "arguments too large")
        timeout_ms = 0
        left = req.remaining()
        if left is not None:
            if left <= 0:
                raise CallError(DEADLINE_EXCEEDED)
            timeout_ms = max(1, int(left * 1000 + 0.999))
        waiter = [threading.Event(), None, b""]
        with self.lock:
            if self.retiring or (self.retired and self.incoming == 0) or self.closed.is_set():
                raise CallError(UNAVAILABLE, "plugin channel is closing")
            self.next_id += 1
            call_id = self.next_id
            self.pending[call_id] = waiter
        body = ZERO_KEY if peer is None else peer
        self.write(struct.pack(">IBQIB", 14 + len(h) + KEY_SIZE + len(args), CALL,
                               call_id, timeout_ms, len(h)) + h + body + args)
        # Wake up for the reply, the caller's cancel, or the deadline.
        req.wakers.add(waiter[0])
        if req.canceled.is_set():
            waiter[0].set()
        got = waiter[0].wait(left)
        req.wakers.discard(waiter[0])
        with self.lock:
            still_pending = self.pending.pop(call_id, None) is not None
            self.check_retired_locked()
        if not still_pending or waiter[1] is not None:
            status, reply = waiter[1], waiter[2]
            if status is None:
                raise CallError(UNAVAILABLE, "connection to the node lost")
            if status != OK:
                raise CallError(status, reply.decode("utf-8", "replace"))
            return reply
        if req.canceled.is_set():
            self.write(struct.pack(">IBQ", 9, CANCEL, call_id))
            raise Canceled()
        if not got:  # the deadline passed: both ends see it, nothing is sent
            raise CallError(DEADLINE_EXCEEDED)
        raise CallError(UNAVAILABLE, "connection to the node lost")

    # Retiring.

    def retire(self):
        """Starts a graceful end from the plugin's side (goaway replaced)."""
        with self.lock:
            if not self.retiring and not self.closed.is_set():
                self.goaway_locked()
            self.check_retired_locked()

    def check_retired_locked(self):
        if self.closed.is_set() or not self.retired or self.incoming or self.pending:
            return
        if not self.retiring:
            self.goaway_locked()
        self.close()

    def close(self):
        if self.closed.is_set():
            return
        self.closed.set()
        self.on_close()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        # Wake every callback still waiting.
        for waiter in list(self.pending.values()):
            waiter[0].set()

    # Reading.

    def read_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def run(self):
        """Reads messages until the channel ends."""
        try:
            while not self.closed.is_set():
                head = self.read_exact(4)
                if head is None:
                    break
                (length,) = struct.unpack(">I", head)
                if length == 0 or length > max(self.max_size, MAX_TEXT) + OVERHEAD:
                    raise ValueError("message length %d" % length)
                msg = self.read_exact(length)
                if msg is None:
                    raise ValueError("channel ended inside a message")
                self.handle(msg[0], msg[1:])
        except (OSError, ValueError, IndexError, struct.error) as e:
            if not self.closed.is_set():
                log("error", "call channel broken", error=e)
        self.close()

    def handle(self, kind, body):
        if kind in (CALL, SEND):
            if kind == CALL:
                call_id, timeout_ms, n = struct.unpack_from(">QIB", body)
                rest = body[13:]
            else:
                call_id, timeout_ms, n = 0, 0, body[0]
                rest = body[1:]
            if n == 0 or len(rest) < n + KEY_SIZE:
                raise ValueError("short call or send")
            handle = rest[:n].decode()
            caller, args = rest[n:n + KEY_SIZE], rest[n + KEY_SIZE:]
            req = Request(call_id, caller, handle, args, timeout_ms)
            with self.lock:
                if call_id and call_id in self.running:
                    raise ValueError("call id %d already running" % call_id)
                if call_id:
                    self.running[call_id] = req
                self.incoming += 1
            threading.Thread(target=self.run_handler, args=(req,), daemon=True).start()
        elif kind == REPLY:
            call_id, status = struct.unpack_from(">QB", body)
            with self.lock:
                if call_id == 0 or call_id > self.next_id:
                    raise ValueError("reply to call %d, never made" % call_id)
                waiter = self.pending.pop(call_id, None)
                if waiter is not None:
                    waiter[1], waiter[2] = status, body[9:]
                    waiter[0].set()
                self.check_retired_locked()
        elif kind == CANCEL:
            (call_id,) = struct.unpack(">Q", body)
            with self.lock:
                req = self.running.get(call_id)
            if req is not None:
                req.cancel()
        elif kind == PING:
            self.write(struct.pack(">IB", 9, PONG) + body[:8])
        elif kind == PONG:
            pass
        elif kind == GOAWAY:
            if body[0] != GOAWAY_REPLACED:
                raise ValueError("goaway %d: %s" % (body[0], body[1:].decode("utf-8", "replace")))
            with self.lock:
                self.retired = True
                self.check_retired_locked()
        else:
            raise ValueError("unknown message type %d" % kind)

    def run_handler(self, req):
        status, body = OK, b""
        try:
            body = self.serve(req) or b""
            if len(body) > self.max_size:
                status, body = TOO_LARGE, b"result too large"
        except Canceled:
            status = None  # nobody waits for the reply
        except CallError as e:
            status, body = e.status, e.text.encode()
        except Exception as e:  # a bug in a handler: the plugin goes on
            log("error", "handler failed", handle=req.handle, error=repr(e))
            status, body = HANDLER_CRASHED, repr(e).encode()
        if status not in (None, OK):
            body = body[:MAX_TEXT].decode("utf-8", "ignore").encode()
        with self.lock:
            self.running.pop(req.id, None)
            self.incoming -= 1
            if req.id and status is not None and not self.closed.is_set():
                self.reply(req.id, status, body)
            self.check_retired_locked()


# --- The plugin --------------------------------------------------------------

class Plugin:
    def __init__(self):
        self.channel = None
        self.prefix = b""
        self.callbacks = False
        self.ready = False

    def serve(self, req):
        if req.caller == ZERO_KEY:
            if req.handle == "peernet.describe":
                return json.dumps({"name": "python-example", "version": VERSION,
                                   "handles": list(HANDLES), "protocol": PROTOCOL_VERSION}).encode()
            if req.handle == "peernet.configure":
                return self.configure(json.loads(req.args))
        if not self.ready:
            raise CallError(UNAVAILABLE, "plugin is not configured")
        if req.handle == "py.echo":
            return self.prefix + req.args
        if req.handle == "py.relay":
            return self.relay(req)
        if req.handle == "py.slow":
            req.wait(int(req.args or b"0") / 1000)
            return b"slept " + req.args
        raise CallError(NO_SUCH_HANDLE, "no handle %r" % req.handle)

    def configure(self, c):
        self.channel.max_size = c["max_message_size"]
        self.callbacks = c.get("callbacks", False)
        try:
            config = json.loads(base64.b64decode(c["config"])) if c.get("config") else {}
            prefix = config.get("prefix", "")
            if not isinstance(prefix, str):
                raise ValueError("prefix must be a string")
        except (ValueError, AttributeError) as e:
            raise CallError(HANDLER_ERROR, "config: %s" % e)
        self.prefix = prefix.encode()
        self.ready = True
        log("info", "configured", prefix=prefix, callbacks=self.callbacks)
        return b""

    def relay(self, req):
        if not self.callbacks:
            raise CallError(UNAVAILABLE, "the node serves no callbacks")
        try:
            r = json.loads(req.args)
            peer = parse_peer_id(r["peer"])
            handle, args = r["handle"], r.get("args", "").encode()
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CallError(HANDLER_ERROR, "relay: want {\"peer\", \"handle\", \"args\"}: %s" % e)
        try:
            return self.channel.call(req, peer, handle, args)
        except CallError as e:
            if e.status == DEADLINE_EXCEEDED:
                raise
            raise CallError(HANDLER_ERROR, "relay: call %s on %s: %s" % (handle, peer_id_text(peer)[:11], e))


def main():
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        sys.stderr.write("This is a PeerNet plugin: configure it in a peernet-host plugin block.\n")
        sys.exit(1)
    if str(PROTOCOL_VERSION) not in os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "").split(","):
        sys.stderr.write("The node does not speak plugin protocol version %d.\n" % PROTOCOL_VERSION)
        sys.exit(1)
    sock = socket.socket(fileno=CHANNEL_FD)
    wake = threading.Event()  # a signal arrived or the channel ended
    plugin = Plugin()
    plugin.channel = Channel(sock, plugin.serve, wake.set)
    signal.signal(signal.SIGTERM, lambda *_: wake.set())
    signal.signal(signal.SIGINT, lambda *_: wake.set())

    # go-plugin's handshake line. The address is unused: the node never
    # connects, calls travel on the channel.
    sys.stdout.write("1|%d|unix|-|grpc|\n" % PROTOCOL_VERSION)
    sys.stdout.flush()

    reader = threading.Thread(target=plugin.channel.run, daemon=True)
    reader.start()
    wake.wait()
    if not plugin.channel.closed.is_set():  # a signal: stop gracefully
        log("info", "stopping: finishing running calls")
        plugin.channel.retire()
        plugin.channel.closed.wait(GRACE)
    sys.exit(0)


if __name__ == "__main__":
    main()
