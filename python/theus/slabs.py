"""The HEAVY slabs a worker maps, from its packet socket (THEUS_HEAVY_FD).

The supervisor sends 13-byte packets (op, slab id, size; little-endian)
with a memfd attached by SCM_RIGHTS: op 1 the worker's own slab, to map
read-write; op 2 another's, read-only; op 3 unmap. A thread reads them
for the worker's life; a process that meets a slab not mapped yet waits
for it.
"""

import fcntl
import mmap
import os
import socket
import struct
import threading
import time

PACKET = struct.Struct("<BIq")
PACKET_SIZE = 13
MAP_RW, MAP_RO, UNMAP = 1, 2, 3

F_SEAL_SHRINK = 0x0002
F_SEAL_GROW = 0x0004
F_GET_SEALS = getattr(fcntl, "F_GET_SEALS", 1034)
MADV_POPULATE_READ = 22  # Linux 5.14
MADV_POPULATE_WRITE = 23


class SlabError(Exception):
    """A bad packet, or a slab that is not sealed: the worker cannot go on
    trusting its packet socket."""


class Region:
    __slots__ = ("mm", "size", "writable")

    def __init__(self, mm, size, writable):
        self.mm, self.size, self.writable = mm, size, writable


class Slabs:
    def __init__(self, sock, log):
        self.sock = sock
        self.log = log
        self.own = 0
        self.inline_max = 2048
        self.cond = threading.Condition()
        self.regions = {}
        self.err = None  # set when the socket ends
        self.closing = []  # unmapped slabs whose mapping numpy arrays still hold
        self.closing_mu = threading.Lock()
        self.thread = threading.Thread(target=self._read, name="theus-slabs", daemon=True)

    def start(self):
        self.thread.start()

    def _read(self):
        err = None
        while err is None:
            try:
                err = self._next()
            except Exception as e:  # a bad packet: no more slabs
                err = e
        if not isinstance(err, EOFError):
            self.log("error", "HEAVY slabs: no more slabs will be mapped", err=str(err))
        with self.cond:
            self.err = err
            self.cond.notify_all()

    def _next(self):
        try:
            data, fds, flags, _ = socket.recv_fds(self.sock, PACKET_SIZE + 1, 4)
        except OSError as e:
            return e
        if not data and not fds:
            return EOFError("the supervisor closed the packet socket")
        try:
            if len(data) != PACKET_SIZE or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise SlabError("slab packet of %d bytes (flags %#x), want %d" % (len(data), flags, PACKET_SIZE))
            op, slab, size = PACKET.unpack(data)
            want = 0 if op == UNMAP else 1
            if op not in (MAP_RW, MAP_RO, UNMAP) or slab == 0 or size < 0 or len(fds) != want:
                raise SlabError("slab packet op %d slab %d size %d with %d descriptors" % (op, slab, size, len(fds)))
            region = None
            if op != UNMAP:
                region = self._map(fds[0], slab, size, op == MAP_RW)
        finally:
            for fd in fds:
                os.close(fd)
        with self.cond:
            old = self.regions.pop(slab, None)
            if region is not None:
                self.regions[slab] = region
            self.cond.notify_all()
        if old is not None:
            self._close(old)
        self.collect()
        return None

    def _map(self, fd, slab, size, writable):
        seals = fcntl.fcntl(fd, F_GET_SEALS)
        if seals & (F_SEAL_SHRINK | F_SEAL_GROW) != F_SEAL_SHRINK | F_SEAL_GROW:
            raise SlabError("slab %d is not sealed against resizing (seals %#x)" % (slab, seals))
        if os.fstat(fd).st_size < size:
            raise SlabError("slab %d: the memfd holds %d bytes, the packet says %d" % (slab, os.fstat(fd).st_size, size))
        mm = None
        if size > 0:
            prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
            mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=prot)
            # Pre-fault, as the Go SDK does: advice, not a requirement.
            try:
                mm.madvise(MADV_POPULATE_WRITE if writable else MADV_POPULATE_READ)
            except (OSError, ValueError, AttributeError):
                pass
        return Region(mm, size, writable)

    def _close(self, r):
        if r.mm is None:
            return
        try:
            r.mm.close()
        except BufferError:  # a numpy array still looks at it: later
            with self.closing_mu:
                self.closing.append(r)

    def collect(self):
        """Closes the mappings of unmapped slabs that no array holds now."""
        if not self.closing:
            return
        with self.closing_mu:
            left = []
            for r in self.closing:
                try:
                    r.mm.close()
                except BufferError:
                    left.append(r)
            self.closing = left

    def region(self, slab, deadline=None, canceled=None):
        """The mapping of slab, waiting for its packet until deadline (a
        time.monotonic() value) or canceled (an Event) is set."""
        with self.cond:
            while True:
                r = self.regions.get(slab)
                if r is not None:
                    return r
                if self.err is not None:
                    raise SlabError("slab %d is not mapped: %s" % (slab, self.err))
                if canceled is not None and canceled.is_set():
                    raise SlabError("waiting for slab %d: canceled" % slab)
                wait = 0.05
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise SlabError("waiting for slab %d: deadline passed" % slab)
                    wait = min(wait, left)
                self.cond.wait(wait)

    def close(self, unmap):
        """Ends the reader; with unmap, unmaps every slab that no array
        holds."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(1)
        self.sock.close()
        if not unmap:
            return
        with self.cond:
            regions, self.regions = list(self.regions.values()), {}
        for r in regions:
            self._close(r)
        self.collect()
