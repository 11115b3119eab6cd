"""Python command lines forked from a warm process instead of started cold.

`python -m bpflab.loaders.xdp_dnat stats ...` spends 0.2 s here importing
before it does anything, and 5 to 10 s in a kernel VM under software
emulation, where the suite runs such command lines hundreds of times. A fork
server imports those modules once; each command line is then a fork of it
that runs the module as `__main__`, exactly as `python -m` would (its own
argv, environment, working directory, standard streams, session, signals
at their defaults, exit status), in a few milliseconds.

    server = ForkServer(["bpflab.loaders.registry"], env)   # once
    proc = server.start(["-m", "bpflab.loaders.hello", "eth0"], env=..., stdout=PIPE)
    proc.communicate(timeout=10)                               # a Popen, nearly

The server is one process with one thread (forking a process with threads
can copy a lock some other thread held); it dies with the thread that
started it (processes.spawn), and every command line dies with the server.
A command line gets the environment it asks for, but modules the server
imported read theirs at import time: `start` refuses (ForkRefused) an
environment other than the server's, and the caller starts it cold.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

from . import processes
from .netns import open_netns, setns

REQUEST_MAX = 1 << 20  # one request: argv, environment, working directory
STATUS = "status"


class ForkRefused(Exception):
    """This command line cannot be forked from the server (start it cold)."""


# --- the server -------------------------------------------------------------------------------------------------

def _serve(control: socket.socket) -> None:
    """Fork one child per request; tell each requester its child's pid and
    later its exit status. Ends when the client closes its end."""
    waiting: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, reply socket)
    with selectors.DefaultSelector() as sel:
        sel.register(control, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                if key.fileobj is control:
                    msg, fds, _, _ = socket.recv_fds(control, REQUEST_MAX, 5)
                    if not msg:
                        return
                    reply = socket.socket(fileno=fds[3])
                    pid = _fork_child(json.loads(msg), fds[:3] + fds[4:], control, reply)
                    for fd in fds[:3] + fds[4:]:
                        os.close(fd)
                    pidfd = os.pidfd_open(pid)
                    waiting[pidfd] = (pid, reply)
                    sel.register(pidfd, selectors.EVENT_READ)
                    with contextlib.suppress(OSError):
                        reply.send(json.dumps({"pid": pid}).encode())
                else:
                    pidfd = key.fileobj
                    pid, reply = waiting.pop(pidfd)
                    sel.unregister(pidfd)
                    os.close(pidfd)
                    _, status = os.waitpid(pid, 0)
                    with contextlib.suppress(OSError):
                        reply.send(json.dumps({STATUS: os.waitstatus_to_exitcode(status)}).encode())
                    reply.close()


def _fork_child(request: dict, fds: list[int], *inherited: socket.socket) -> int:
    """fds: stdin, stdout, stderr and (if asked) a network namespace."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        if len(fds) > 3:
            setns(fds[3])
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        # Nothing else of the server's: its sockets, other children's
        # reply sockets and pidfds (the objects stay, their numbers go).
        for sock in inherited:
            sock.detach()
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        code = _run_as_main(request)
    except BaseException:  # noqa: BLE001 -- nothing may escape a forked child
        with contextlib.suppress(BaseException):
            sys.excepthook(*sys.exc_info())
    finally:
        os._exit(code)


def _run_as_main(request: dict) -> int:
    """What `python [-u] -m MODULE ARGS` or `python SCRIPT ARGS` does, in
    this (forked) process; returns the exit status."""
    import runpy
    import warnings

    os.setsid()
    processes.die_with_parent()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL if sig != signal.SIGPIPE else signal.SIG_IGN)  # SIGPIPE: as Python
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    unbuffered = request["unbuffered"]
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False) if unbuffered else open(1, "wb", closefd=False),
                                  encoding="utf-8", write_through=unbuffered)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True, write_through=unbuffered)
    # The server imported the module run as __main__ already (as an
    # import of some other module, which `python -m` would do later):
    # runpy warns about that, `python -m` would not.
    warnings.filterwarnings("ignore", message=".*found in sys.modules after import of package", category=RuntimeWarning)
    target, args = request["argv"][0], request["argv"][1:]
    try:
        if target == "-m":
            sys.argv = [args[0], *args[1:]]
            sys.path[0] = request["cwd"]
            runpy.run_module(args[0], run_name="__main__", alter_sys=True)
        elif target == "-c":
            sys.argv = ["-c", *args[1:]]
            sys.path[0] = ""
            main = type(sys)("__main__")
            sys.modules["__main__"] = main
            exec(compile(args[0], "<string>", "exec"), main.__dict__)
        else:
            sys.argv = [target, *args]
            sys.path[0] = os.path.dirname(os.path.abspath(target))
            runpy.run_path(target, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt as exc:
        _print_traceback(exc)
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # Python's own exit on an uncaught Ctrl-C
        code = 130
    except BaseException as exc:  # noqa: BLE001 -- a traceback and status 1, as Python
        _print_traceback(exc)
        code = 1
    import atexit

    atexit._run_exitfuncs()  # noqa: SLF001 - what Python's own exit runs; the fork's exit is os._exit
    _flush()
    return code


def _print_traceback(exc: BaseException) -> None:
    """The traceback Python prints, from the program's first frame (not
    from this module's and runpy's)."""
    tb = exc.__traceback__
    while tb is not None and (tb.tb_frame.f_code.co_filename == __file__ or "runpy" in tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    sys.excepthook(type(exc), exc.with_traceback(tb), tb)  # it prints the exception's own


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def main(argv: list[str]) -> None:
    """python -m bpflab.host.forkserver CONTROL_FD MODULE...: import the
    modules, then serve the client on CONTROL_FD."""
    import importlib

    control = socket.socket(fileno=int(argv[0]))
    for name in argv[1:]:
        importlib.import_module(name)
    if threading.active_count() != 1:
        raise SystemExit(f"forkserver: importing {argv[1:]} started threads: forking would be unsafe")
    control.send(b"ready")
    _serve(control)


# --- the client -------------------------------------------------------------------------------------------------

class ForkServer:
    """A warm Python (`preload` imported) that forks command lines."""

    def __init__(self, preload: list[str], env: dict[str, str], cwd: str | None = None, timeout: float = 60,
                 volatile: tuple[str, ...] = ("PYTEST_CURRENT_TEST",)):
        """`volatile`: variables that may differ from request to request
        (no module reads them at import time)."""
        self.env, self.volatile = dict(env), volatile
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = processes.spawn([sys.executable, "-m", "bpflab.host.forkserver", str(theirs.fileno()),
                                         *preload], env=self.env, cwd=cwd, pass_fds=(theirs.fileno(),),
                                        stdin=subprocess.DEVNULL, recorded=False)
        finally:
            theirs.close()
        self.control, self._lock = mine, threading.Lock()
        mine.settimeout(timeout)
        try:
            ready = mine.recv(16)
        except TimeoutError:
            ready = b""
        if ready != b"ready":
            self.close()
            raise ForkRefused(f"the fork server did not start (exit {self.proc.poll()})")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def start(self, argv: list[str], *, env: dict[str, str], cwd: str, stdout=None, stderr=None, text: bool = False,
              unbuffered: bool = False, netns: str | None = None) -> ForkedProcess:
        """Fork `python ARGV` (argv without the interpreter: ["-m", module,
        ...], ["-c", code, ...] or [script, ...], after "-u" if unbuffered),
        inside `netns` if given; stdin is /dev/null."""
        if argv[:1] == ["-u"]:
            argv, unbuffered = argv[1:], True
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-m", "-c")):
            raise ForkRefused(f"python options other than -u, -m and -c: {argv[:1]}")
        if self._stable(env) != self._stable(self.env):
            raise ForkRefused("an environment other than the server's")
        if not self.alive():
            raise ForkRefused("the fork server is gone")
        unbuffered = unbuffered or bool(env.get("PYTHONUNBUFFERED"))  # as Python reads it
        request = json.dumps({"argv": argv, "env": env, "cwd": str(cwd), "unbuffered": unbuffered}).encode()
        ours, child_fds = [], []
        try:
            child_fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            for inherit, where in ((1, stdout), (2, stderr)):
                if where == subprocess.PIPE:
                    r, w = os.pipe2(os.O_CLOEXEC)
                    ours.append(r)
                    child_fds.append(w)
                elif where == subprocess.STDOUT:
                    ours.append(None)
                    child_fds.append(os.dup(child_fds[1]))
                elif where == subprocess.DEVNULL:
                    ours.append(None)
                    child_fds.append(os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC))
                else:  # None (ours), a file or a descriptor
                    ours.append(None)
                    fd = inherit if where is None else where.fileno() if hasattr(where, "fileno") else where
                    child_fds.append(os.dup(fd))
            if netns is not None:
                child_fds.append(open_netns(netns))
            reply, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                with self._lock:
                    socket.send_fds(self.control, [request], [*child_fds[:3], theirs.fileno(), *child_fds[3:]])
            finally:
                theirs.close()
        except BaseException:
            for fd in ours:
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in child_fds:
                os.close(fd)
        return ForkedProcess(["python", *argv], reply, ours, text)

    def _stable(self, env: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in env.items() if k not in self.volatile}

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.control.close()
        processes.stop(self.proc)


class ForkedProcess:
    """A forked command line, used like subprocess.Popen (what the suite
    uses of it: pid, args, stdout, stderr, poll, wait, communicate,
    send_signal, terminate, kill)."""

    stdin = None

    def __init__(self, args: list[str], reply: socket.socket, fds: list[int | None], text: bool):
        self.args, self._reply, self.returncode, self._orphaned = args, reply, None, False
        reply.settimeout(30)
        msg = reply.recv(4096)
        if not msg:
            raise ForkRefused("the fork server did not fork")
        self.pid = json.loads(msg)["pid"]
        mode = "r" if text else "rb"
        self.stdout, self.stderr = (open(fd, mode, closefd=True) if fd is not None else None for fd in fds)

    def poll(self) -> int | None:
        return self._status(0)

    def wait(self, timeout: float | None = None) -> int:
        if self._status(timeout) is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def _status(self, timeout: float | None) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if not self._orphaned:
            self._reply.settimeout(timeout)
            try:
                msg = self._reply.recv(4096)
            except (TimeoutError, BlockingIOError):
                return None
            self._reply.close()
            if msg:
                self.returncode = json.loads(msg)[STATUS]
                return self.returncode
            self._orphaned = True  # the server died: its PDEATHSIG kills the child
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            self.returncode = -signal.SIGKILL
            return self.returncode
        try:
            if select.select([pidfd], [], [], timeout)[0]:  # readable: it has exited
                self.returncode = -signal.SIGKILL
        finally:
            os.close(pidfd)
        return self.returncode

    def communicate(self, input=None, timeout: float | None = None):
        """Read stdout and stderr to their ends, then wait."""
        deadline = None if timeout is None else time.monotonic() + timeout
        streams = [s for s in (self.stdout, self.stderr) if s is not None]
        chunks = {s: [] for s in streams}
        with selectors.DefaultSelector() as sel:
            for s in streams:
                if not s.closed:
                    os.set_blocking(s.fileno(), False)
                    sel.register(s.fileno(), selectors.EVENT_READ, s)
            while sel.get_map():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout)
                for key, _ in sel.select(left):
                    data = os.read(key.fd, 1 << 16)
                    if data:
                        chunks[key.data].append(data)
                    else:
                        sel.unregister(key.fd)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        results = []
        for s in (self.stdout, self.stderr):
            if s is None:
                results.append(None)
                continue
            data = b"".join(chunks.get(s, []))
            results.append(data.decode("utf-8", "backslashreplace") if isinstance(s, io.TextIOBase) else data)
            s.close()
        return tuple(results)

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


# --- one shared server per set of modules, with a cold start to fall back on ----------------------------------

COLD_ENV = "BPFLAB_COLD_CLI"  # =1: every command line a process of its own
_shared: dict[tuple[str, ...], ForkServer] = {}


def start_python(argv: list[str], *, preload: tuple[str, ...], env: dict[str, str], cwd: str,
                 netns: str | None = None, stdout=None, stderr=None, text: bool = False, unbuffered: bool = False,
                 cold: bool = False) -> ForkedProcess | subprocess.Popen:
    """`python ARGV`, stdin /dev/null, recorded like processes.spawn():
    forked from this process's fork server for `preload` (started on first
    use) unless `cold`, $BPFLAB_COLD_CLI is 1 or the server refuses, then
    started cold. A server dies with the thread that starts it: only the
    main thread starts one."""
    if not cold and os.environ.get(COLD_ENV) != "1" and threading.current_thread() is threading.main_thread():
        try:
            server = _shared.get(preload)
            if server is None or not server.alive():
                server = _shared[preload] = ForkServer(list(preload), env)
            proc = server.start(argv, env=env, cwd=cwd, stdout=stdout, stderr=stderr, text=text,
                                unbuffered=unbuffered, netns=netns)
            processes.record(proc)
            return proc
        except ForkRefused:
            pass
    return processes.spawn([sys.executable, *(["-u"] if unbuffered else []), *argv], netns=netns, env=env, cwd=cwd,
                           stdout=stdout, stderr=stderr, text=text, stdin=subprocess.DEVNULL)


def close_shared() -> None:
    """Stop the shared fork servers (what they forked dies with them)."""
    while _shared:
        _shared.popitem()[1].close()


if __name__ == "__main__":
    main(sys.argv[1:])
