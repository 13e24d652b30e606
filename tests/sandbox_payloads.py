"""A suite of hostile model sources and the canaries that tell whether one of them got out.

Used by ``tests/test_mutation_payloads.py`` (the fast payloads) and by
``benchmarks/sandbox_escape.py`` (all of them). Two kinds of payload:

* ``raw=False`` — what an LLM could send today: the source goes through every layer (the
  AST filter, restricted builtins, then the operating-system sandbox);
* ``raw=True`` — the same attacks as plain Python with **all Python-level checks switched
  off** (``Sandbox(python_checks=False)``): arbitrary code runs in the builder, so only the
  operating system (namespaces, read-only file system, no network, unprivileged user,
  seccomp, limits) stands between it and the caller. This is the boundary the issue asks
  for: it must hold even when the parser is bypassed.

Payload sources may use these tokens, replaced by the real values of the caller's
canaries (an attacker is given every advantage): ``@VICTIM@`` (a file it should not be
able to touch), ``@SECRET_FILE@``, ``@CANARY_DIR@``, ``@PORT@`` (a TCP listener on
127.0.0.1), ``@UDP_PORT@``, ``@UNIX@`` (a Unix socket path), ``@CALLER_PID@``,
``@CANARY_PID@`` (a process it should not be able to signal) and ``@KEY_NAME@``.

:class:`Canaries` sets all of that up and :meth:`Canaries.violations` lists every effect
that reached the caller: a file changed, created or deleted, a connection or datagram
received, a signal delivered to the caller or the canary process, the caller's
environment changed, the canary key in the verdict, the caller's memory up by more than
200 MB, its wall time over the deadline + 5 s, or a process of the sandbox still alive.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CANARY_KEY = "sk-canary-7f3a9c1e5b2d4f60a8e1c3b5d7f9a2c4"
KEY_NAME = "NASASSIST_LLM_API_KEY"
MEMORY_SLACK_MB = 200.0
WALL_SLACK_S = 5.0

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
TAIL = ("\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(3, 10)\n\n    def forward(self, x):\n        return self.fc(x.mean(dim=(2, 3)))\n")


def net(init: str = "", forward: str = "return self.fc(x.mean(dim=(2, 3)))", extra: str = "") -> str:
    """A tiny model with ``init`` appended to ``__init__`` and ``forward``'s body replaced (checks on)."""
    init_lines = "".join(f"        {line}\n" for line in init.splitlines())
    forward_lines = "".join(f"        {line}\n" for line in forward.splitlines())
    return (HEADER + extra + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.fc = nn.Linear(3, 10)\n" + init_lines + "\n    def forward(self, x):\n" + forward_lines)


CT = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
      "def call(what, r):\n    if r < 0:\n        e = ctypes.get_errno()\n        raise OSError(e, f'{what}: {os.strerror(e)}')\n"
      "    return r\n")


def raw(code: str) -> str:
    """Module-level Python run with full builtins (checks off), followed by a valid model."""
    return "import torch\nimport torch.nn as nn\n" + code.strip("\n") + "\n" + TAIL


@dataclass(frozen=True)
class Payload:
    """One hostile source: ``kind`` is its class of attack; ``slow`` ones wait for a limit to hit."""

    name: str
    kind: str
    source: str
    raw: bool = False
    slow: bool = False
    expect_refused: bool = True  # False: a model that may build, whose verdict must then be truthful
    honest_params: int | None = None  # the true parameter count, when the payload lies about it
    honest_next: bool = False  # also build an honest model after it in the same batch: it must be unaffected
    # A known limit rather than an escape: with the Python-level checks bypassed, a builder can
    # misreport its *own* model (it is that model); it still cannot reach the caller or other sources.
    residual: bool = False


def _forged(params_delta: int = 0, num_params: int | None = None, graph: str | None = None) -> str:
    """Raw code that writes a forged 'ok' answer on every descriptor and exits before the real one.

    The fake graph is a real traced graph of a small linear model (the attacker has the
    library too), with its parameter count shifted by ``params_delta`` unless ``graph``
    replaces it; ``num_params`` is the count the answer claims (default: the graph's).
    """
    return raw(f"""
import json, os
from nasassist_plugins.adapters.torch_adapter import from_torch
g = json.loads(from_torch(nn.Linear(3, 10), torch.randn(1, 3)).to_json())
for node in g["nodes"]:
    if node.get("attrs", {{}}).get("num_params"):
        node["attrs"]["num_params"] += {params_delta}
graph = {graph!r} or json.dumps(g)
claimed = {num_params!r} if {num_params!r} is not None else 40
fake = json.dumps({{"ok": True, "num_params": claimed, "output_shape": [1, 10], "graph": graph,
                   "index": 1, "id": 99, "ready": True, "done": True}}).encode() + b"\\n"
for fd in range(0, 256):
    try:
        os.write(fd, fake)
    except OSError:
        pass
os._exit(0)
""")


PAYLOADS: list[Payload] = [
    # ----------------------------------------------------------------- files (checks on)
    Payload("torch.os.remove (issue example)", "files", HEADER + "class Net(nn.Module):\n    def forward(self, x):\n"
            "        torch.os.remove('@VICTIM@')\n        return x\n"),
    Payload("torch.builtins.open truncate", "files", net(init="torch.builtins.open('@VICTIM@', 'w').close()")),
    Payload("getattr(torch, 'lo'+'ad') unpickle", "files", net(init="getattr(torch, 'lo' + 'ad')('@VICTIM@')")),
    Payload("torch.serialization.load", "files", net(init="torch.serialization.load('@VICTIM@')")),
    Payload("numpy re-export np.save", "files", net(init="F.np.save('@VICTIM@', [1])")),
    Payload("pathlib via torch.fx re-export", "files", net(init="p = nn.functional.torch.Path('@VICTIM@')")),
    Payload("torch.utils cpp_extension", "files", net(init="torch.utils.cpp_extension.load_inline('x', 'int f(){}')")),
    Payload("os in a lambda default", "files", net(init="f = lambda r=torch.os.remove: r('@VICTIM@')\nf()")),
    Payload("os in a decorator", "files", HEADER + "class Net(nn.Module):\n    @torch.os.system\n    def forward(self, x):\n"
            "        return x\n"),
    Payload("os in a module constant", "files", HEADER + "SYS = torch.sys\n" + net()[len(HEADER):]),
    # ----------------------------------------------------------------- files (raw: OS boundary)
    Payload("raw os.remove victim", "files", raw("import os\nos.remove('@VICTIM@')"), raw=True),
    Payload("raw truncate victim", "files", raw("open('@VICTIM@', 'w').close()"), raw=True),
    Payload("raw create file beside victim", "files", raw("open('@CANARY_DIR@/dropped.txt', 'w').write('x')"), raw=True),
    Payload("raw write into the package directory", "files",
            raw("import nasassist_plugins, os\nopen(os.path.join(nasassist_plugins.__path__[0], 'evil.py'), 'w').write('x')"),
            raw=True),
    Payload("raw write to /tmp and /dev/shm", "files",
            raw("import os\nfor d in ('/tmp', '/dev/shm', '/var/tmp', '/', '/dev'):\n    try:\n"
                "        open(os.path.join(d, 'nasassist-escape'), 'w').write('x')\n    except OSError:\n        pass\n"
                "open('/tmp/nasassist-escape', 'w')"), raw=True),
    Payload("raw chmod/rename in site-packages", "files",
            raw("import os, torch\nos.rename(torch.__file__, torch.__file__ + '.bak')"), raw=True),
    Payload("raw rmtree the home directory", "files",
            raw("import shutil, os\nshutil.rmtree(os.path.expanduser('~'))\nshutil.rmtree('@CANARY_DIR@')"), raw=True),
    Payload("raw symlink to /etc/passwd", "files", raw("import os\nos.symlink('/etc/passwd', '/tmp/p')"), raw=True),
    Payload("raw mount a tmpfs", "files",
            raw(CT + "call('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))"), raw=True),
    Payload("raw reach caller cwd via /proc", "files",
            raw("import os\nos.listdir('/proc/@CALLER_PID@/cwd')\nopen('/proc/@CALLER_PID@/cwd/victim.txt', 'w')"), raw=True),
    Payload("raw unpickle through torch.load", "files",
            raw("import pickle, os, torch\nclass E:\n    def __reduce__(self):\n        return (os.remove, ('@VICTIM@',))\n"
                "data = pickle.dumps(E())\nimport io\ntorch.load(io.BytesIO(data), weights_only=False)"), raw=True),
    # ----------------------------------------------------------------- secrets
    Payload("torch.sys.modules os.environ", "secrets", net(init="k = torch.sys.modules['os'].environ['@KEY_NAME@']\n"
                                                                 "raise RuntimeError(k)")),
    Payload("environ through torch.os", "secrets", net(init="raise RuntimeError(str(torch.os.environ))")),
    Payload("frame walk to real builtins", "secrets",
            net(init="g = (i for i in ()).gi_frame.f_back.f_globals\nraise RuntimeError(str(g))")),
    Payload("raw os.environ into the verdict", "secrets",
            raw("import os\nraise RuntimeError('ENV ' + repr(dict(os.environ)) + os.environ.get('@KEY_NAME@', ''))"),
            raw=True),
    Payload("raw /proc/*/environ of every visible process", "secrets",
            raw("import os\nleak = ''\nfor p in os.listdir('/proc'):\n    if p.isdigit():\n        try:\n"
                "            leak += open(f'/proc/{p}/environ').read()\n        except OSError:\n            pass\n"
                "raise RuntimeError('LEAK ' + leak)"), raw=True),
    Payload("raw caller /proc/<pid>/environ", "secrets",
            raw("raise RuntimeError(open('/proc/@CALLER_PID@/environ').read())"), raw=True),
    Payload("raw caller /proc/<pid>/mem", "secrets",
            raw("f = open('/proc/@CALLER_PID@/mem', 'rb')\nraise RuntimeError(str(f.read(100)))"), raw=True),
    Payload("raw read the secret file", "secrets", raw("raise RuntimeError(open('@SECRET_FILE@').read())"), raw=True),
    Payload("raw read /etc/shadow and ssh keys", "secrets",
            raw("import glob\nleak = ''\nfor p in ['/etc/shadow', '/root/.ssh/id_rsa', *glob.glob('/home/*/.ssh/*')]:\n"
                "    try:\n        leak += open(p).read()\n    except OSError:\n        pass\nraise RuntimeError(leak)"),
            raw=True),
    Payload("raw supervisor's descriptors", "secrets",
            raw("import os\nppid = os.getppid()\nfor fd in os.listdir(f'/proc/{ppid}/fd'):\n"
                "    os.write(os.open(f'/proc/{ppid}/fd/{fd}', os.O_WRONLY), b'{\"ok\": true}\\n')"), raw=True),
    Payload("raw control characters in the verdict", "secrets",
            raw("raise RuntimeError('\\x1b]0;pwned\\x07\\x1b[2J\\r@CANARY_KEY_SHAPE@ ' + 'A' * 100000)"), raw=True),
    # ----------------------------------------------------------------- network
    Payload("socket through a torch re-export", "network",
            net(init="torch.multiprocessing.reductions.socket.create_connection(('127.0.0.1', @PORT@))")),
    Payload("raw TCP connect to the caller's port", "network",
            raw("import socket\nsocket.create_connection(('127.0.0.1', @PORT@), timeout=2).sendall(b'pwned')"), raw=True),
    Payload("raw UDP datagram to the caller", "network",
            raw("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'pwned', ('127.0.0.1', @UDP_PORT@))"),
            raw=True),
    Payload("raw Unix socket of the caller", "network",
            raw("import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('@UNIX@')\ns.sendall(b'pwned')"), raw=True),
    Payload("raw abstract Unix socket", "network",
            raw("import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('\\0@ABSTRACT@')"), raw=True),
    Payload("raw socket through ctypes libc", "network",
            raw(CT + "call('socket', libc.socket(2, 1, 0))"), raw=True),
    Payload("raw internet address", "network",
            raw("import socket\nsocket.create_connection(('1.1.1.1', 443), timeout=2)"), raw=True),
    Payload("raw socketpair", "network", raw("import socket\nsocket.socketpair()"), raw=True),
    # ----------------------------------------------------------------- signals and other processes
    Payload("kill(getppid(), SIGSTOP) via torch.os", "signals", net(init="torch.os.kill(torch.os.getppid(), 19)")),
    Payload("raw SIGSTOP the supervisor", "signals", raw("import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)"),
            raw=True),
    Payload("raw SIGUSR1 the caller by pid", "signals", raw("import os, signal\nos.kill(@CALLER_PID@, signal.SIGUSR1)"),
            raw=True),
    Payload("raw SIGKILL the canary process", "signals", raw("import os, signal\nos.kill(@CANARY_PID@, signal.SIGKILL)"),
            raw=True),
    Payload("raw SIGSTOP the canary process", "signals", raw("import os, signal\nos.kill(@CANARY_PID@, signal.SIGSTOP)"),
            raw=True),
    Payload("raw kill(-1, SIGKILL)", "signals", raw("import os, signal\nos.kill(-1, signal.SIGKILL)"), raw=True),
    Payload("raw killpg own group", "signals", raw("import os, signal\nos.killpg(os.getpgid(0), signal.SIGKILL)"),
            raw=True),
    Payload("raw pidfd_send_signal", "signals",
            raw(CT + "fd = libc.syscall(434, os.getppid(), 0)\ncall('pidfd_send_signal', libc.syscall(424, fd, 9, None, 0))"),
            raw=True),
    Payload("raw tgkill the supervisor", "signals",
            raw(CT + "call('tgkill', libc.syscall(234, os.getppid(), os.getppid(), 9))"), raw=True),
    Payload("raw ptrace the supervisor", "signals",
            raw(CT + "call('ptrace', libc.ptrace(16, os.getppid(), None, None))"), raw=True),
    Payload("raw write the supervisor's memory", "signals",
            raw("import os\nf = open(f'/proc/{os.getppid()}/mem', 'wb')\nf.seek(0x400000)\nf.write(b'x')"), raw=True),
    Payload("raw process_vm_writev", "signals",
            raw(CT + "call('process_vm_writev', libc.syscall(311, os.getppid(), None, 0, None, 0, 0))"), raw=True),
    Payload("raw prlimit the supervisor", "signals",
            raw("import resource, os\nresource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (3, 3))"), raw=True),
    Payload("raw renice the supervisor", "signals", raw("import os\nos.setpriority(os.PRIO_PROCESS, os.getppid(), 19)"),
            raw=True),
    Payload("raw TIOCSTI into a terminal", "signals",
            raw("import fcntl, termios, os\nfd = os.open('/dev/tty', os.O_RDWR)\nfcntl.ioctl(fd, termios.TIOCSTI, b'x')"),
            raw=True),
    # ----------------------------------------------------------------- new processes
    Payload("importlib subprocess via torch", "processes",
            net(init="torch.importlib.import_module('sub' + 'process').run(['sh', '-c', 'rm @VICTIM@'])")),
    Payload("ctypes CDLL via torch", "processes", net(init="torch.ctypes.CDLL(None).system(b'rm @VICTIM@')")),
    Payload("raw fork bomb", "processes",
            raw("import os\nfor _ in range(200):\n    if os.fork() == 0:\n        import time\n        time.sleep(60)\n"
                "        os._exit(0)"), raw=True),
    Payload("raw subprocess shell", "processes",
            raw("import subprocess\nsubprocess.run(['sh', '-c', 'rm -f @VICTIM@'])"), raw=True),
    Payload("raw execv a shell", "processes", raw("import os\nos.execv('/bin/sh', ['sh', '-c', 'rm -f @VICTIM@'])"),
            raw=True),
    Payload("raw setsid daemon that writes later", "processes",
            raw("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(5)\n"
                "        open('@VICTIM@', 'w').write('late')\n    os._exit(0)"), raw=True),
    Payload("raw posix_spawn", "processes", raw("import os\nos.posix_spawn('/bin/sh', ['sh', '-c', 'true'], {})"),
            raw=True),
    Payload("raw clone3 and clone syscalls", "processes",
            raw(CT + "try:\n    call('clone3', libc.syscall(435, None, 0))\nexcept OSError:\n"
                "    call('clone', libc.syscall(56, 17, None, None, None, None))"), raw=True),
    Payload("raw multiprocessing.Process", "processes",
            raw("import multiprocessing\np = multiprocessing.Process(target=print)\np.start()"), raw=True),
    Payload("raw vfork through ctypes", "processes",
            raw(CT + "call('vfork', libc.syscall(58))\nraise RuntimeError('vfork returned')"), raw=True),
    Payload("raw new user namespace", "processes",
            raw(CT + "call('unshare', libc.unshare(0x10000000 | 0x00020000))"), raw=True),
    Payload("raw setns into pid 1's namespaces", "processes",
            raw("import os\nfd = os.open('/proc/1/ns/mnt', os.O_RDONLY)\nos.setns(fd, 0)"), raw=True),
    Payload("raw System V shared memory 1 GB", "processes",
            raw(CT + "call('shmget', libc.shmget(0, ctypes.c_size_t(1 << 30), 0o1000 | 0o600))"), raw=True),
    Payload("raw bpf and perf_event_open", "processes",
            raw(CT + "try:\n    call('bpf', libc.syscall(321, 0, None, 0))\nexcept OSError:\n"
                "    call('perf_event_open', libc.syscall(298, None, 0, -1, -1, 0))"), raw=True),
    Payload("raw io_uring_setup", "processes",
            raw(CT + "call('io_uring_setup', libc.syscall(425, 4, ctypes.create_string_buffer(120)))"), raw=True),
    # ----------------------------------------------------------------- resource exhaustion
    Payload("memory bomb torch.zeros(10**10)", "resources",
            net(forward="buf = torch.zeros(10 ** 10)\nreturn self.fc(x.mean(dim=(2, 3)))")),
    Payload("enormous model refused before allocating", "resources", net(init="self.big = nn.Linear(100000, 100000)")),
    Payload("unbounded recursion", "resources", net(extra="def f(n):\n    return f(n + 1)\n\n\n", init="f(0)")),
    Payload("4 KB x+x+... source", "resources",
            HEADER + "class Net(nn.Module):\n    def forward(self, x):\n        return " + "+".join(["x"] * 2000) + "\n"),
    Payload("300 nested calls", "resources",
            HEADER + "class Net(nn.Module):\n    def forward(self, x):\n        return " + "F.relu(" * 300 + "x" + ")" * 300 + "\n"),
    Payload("infinite loop", "resources", net(init="while True:\n    pass"), slow=True),
    Payload("alarm-swallowing loop", "resources",
            net(init="while True:\n    try:\n        while True:\n            pass\n    except:\n        pass"),
            slow=True),
    Payload("raw sleep with SIGALRM ignored", "resources",
            raw("import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(3600)"), raw=True,
            slow=True),
    Payload("raw close the answer pipe and spin", "resources",
            raw("import os, signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nos.closerange(3, 256)\n"
                "import time\ntime.sleep(3600)"), raw=True, slow=True),
    Payload("raw CPU burn in 4 threads", "resources",
            raw("import threading, signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                "def burn():\n    while True:\n        pass\nfor _ in range(4):\n"
                "    threading.Thread(target=burn, daemon=True).start()\nburn()"), raw=True, slow=True),
    Payload("raw memory bomb bytearray", "resources", raw("blob = bytearray(8 << 30)"), raw=True),
    Payload("raw thread bomb", "resources",
            raw("import threading, time\nts = []\nfor _ in range(5000):\n"
                "    t = threading.Thread(target=time.sleep, args=(60,), daemon=True)\n    t.start()\n    ts.append(t)"),
            raw=True),
    Payload("raw descriptor exhaustion", "resources",
            raw("import os\nfds = [os.open('/dev/null', os.O_RDONLY) for _ in range(100000)]"), raw=True),
    Payload("raw memfd bomb", "resources",
            raw("import os\nfd = os.memfd_create('x')\nos.ftruncate(fd, 16 << 30)\n"
                "for _ in range(64):\n    os.write(fd, b'x' * (64 << 20))"), raw=True),
    Payload("raw 3 GB to stdout", "resources",
            raw("import os\nchunk = b'x' * (1 << 24)\nfor _ in range(192):\n    os.write(1, chunk)"), raw=True,
            expect_refused=False, honest_params=40),
    Payload("raw 100 MB exception message", "resources", raw("raise RuntimeError('x' * (100 << 20))"), raw=True),
    # ----------------------------------------------------------------- lying results
    Payload("is_meta lie about the parameter count", "forgery",
            net(init="if torch.empty(1).is_meta:\n    self.w = nn.Linear(2, 2)\nelse:\n    self.w = nn.Linear(1000, 1000)"),
            expect_refused=False, honest_params=40 + 1_001_000),
    Payload("parameters() overridden to hide weights", "forgery",
            net(init="self.hidden = nn.Linear(500, 500)", extra="") + "\n    def parameters(self, recurse=True):\n"
            "        return iter([])\n", expect_refused=False, honest_params=40 + 250_500),
    Payload("print a forged answer", "forgery",
            net(init="print('{\"ok\": true, \"num_params\": 1, \"index\": 0}')"), expect_refused=False, honest_params=40),
    Payload("exception text shaped like an answer", "forgery",
            net(init="raise RuntimeError('{\"ok\": true, \"num_params\": 1}\\n{\"done\": true}')")),
    Payload("raw forged answer, graph/params inconsistent", "forgery", _forged(params_delta=5000), raw=True),
    Payload("raw forged answer over the parameter limit", "forgery", _forged(num_params=10**12), raw=True),
    Payload("raw forged answer with a broken graph", "forgery", _forged(graph='{"format": "nope"}'), raw=True),
    Payload("raw forged answer, consistent (own verdict)", "forgery", _forged(params_delta=-30, num_params=10), raw=True,
            residual=True),
    Payload("raw forged answer, 200 MB", "forgery",
            raw("import os\nchunk = b'{\"ok\": true, \"graph\": \"' + b'x' * (1 << 24)\nfor fd in range(3, 64):\n"
                "    try:\n        [os.write(fd, chunk) for _ in range(12)]\n    except OSError:\n        pass"), raw=True),
    Payload("raw patch the tracer for the next source", "forgery",
            raw("import nasassist_plugins.adapters.torch_adapter as ta\nta.from_torch = None\n"
                "import torch\ntorch.randn = None"), raw=True, honest_next=True),
]


def substitute(source: str, values: dict[str, str]) -> str:
    for token, value in values.items():
        source = source.replace(f"@{token}@", value)
    return source


# --------------------------------------------------------------------------- canaries
class Canaries:
    """Things in the caller that no payload may touch; :meth:`violations` says which were."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root)
        self.victim = self.dir / "victim.txt"
        self.victim.write_text("canary")
        self.secret = self.dir / "secret.txt"
        self.secret.write_text(CANARY_KEY)
        self.secret.chmod(0o600)
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.tcp.setblocking(False)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.setblocking(False)
        self.unix_path = tempfile.mktemp(prefix="nasassist-canary-", suffix=".sock")
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(self.unix_path)
        self.unix.listen(4)
        self.unix.setblocking(False)
        self.abstract = socket.socket(socket.AF_UNIX)
        self.abstract_name = f"nasassist-canary-{os.getpid()}"
        self.abstract.bind("\0" + self.abstract_name)
        self.abstract.listen(4)
        self.abstract.setblocking(False)
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        self.signals: list[int] = []
        self._old_handlers: dict[int, Any] = {}
        self.env = _environment()
        self.listing = self._listing()
        self.tmp_listing = set(os.listdir(tempfile.gettempdir()))

    def values(self) -> dict[str, str]:
        return {"VICTIM": str(self.victim), "SECRET_FILE": str(self.secret), "CANARY_DIR": str(self.dir),
                "PORT": str(self.tcp.getsockname()[1]), "UDP_PORT": str(self.udp.getsockname()[1]),
                "UNIX": self.unix_path, "CALLER_PID": str(os.getpid()), "CANARY_PID": str(self.process.pid),
                "KEY_NAME": KEY_NAME, "CANARY_KEY_SHAPE": "sk-" + "q" * 24, "ABSTRACT": self.abstract_name}

    def _listing(self) -> dict[str, tuple[int, float, int]]:
        out = {}
        for path in sorted(self.dir.rglob("*")):
            st = path.lstat()
            out[str(path)] = (st.st_size, st.st_mtime, st.st_mode)
        return out

    def _on_signal(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        self.signals.append(signum)

    def __enter__(self) -> "Canaries":
        for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGALRM):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self.close()

    def close(self) -> None:
        for s in (self.tcp, self.udp, self.unix, self.abstract):
            s.close()
        try:
            os.unlink(self.unix_path)
        except OSError:
            pass
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def violations(self, *texts: str) -> list[str]:
        """Every effect outside the sandbox since the canaries were laid, plus the key in ``texts``."""
        found = []
        if not self.victim.exists() or self.victim.read_text() != "canary":
            found.append("victim file changed or deleted")
        if self._listing() != self.listing:
            found.append("canary directory changed")
        leaked_tmp = {n for n in set(os.listdir(tempfile.gettempdir())) - self.tmp_listing if "nasassist-escape" in n}
        if leaked_tmp:
            found.append(f"files appeared in the caller's temporary directory: {sorted(leaked_tmp)}")
        for name, sock in (("TCP", self.tcp), ("Unix", self.unix), ("abstract Unix", self.abstract)):
            try:
                conn, _ = sock.accept()
                conn.close()
                found.append(f"{name} connection received")
            except (BlockingIOError, OSError):
                pass
        try:
            self.udp.recvfrom(100)
            found.append("UDP datagram received")
        except (BlockingIOError, OSError):
            pass
        if self.signals:
            found.append(f"caller received signals {self.signals}")
        if self.process.poll() is not None:
            found.append("canary process killed")
        elif _state(self.process.pid) in {"T", "t"}:
            found.append("canary process stopped")
            os.kill(self.process.pid, signal.SIGCONT)
        if _environment() != self.env:
            found.append("caller environment changed")
        for text in texts:
            if CANARY_KEY in str(text) or CANARY_KEY[3:20] in str(text):
                found.append("canary key in the output")
                break
        return found


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # pytest rewrites that one


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"


def descendants(pid: int) -> list[int]:
    """PIDs of every process below ``pid`` (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def processes_of_uid(uid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.add(int(entry))
            except OSError:
                pass
    return found


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


@dataclass
class Outcome:
    """What one payload did: the verdict and every violation found."""

    name: str
    kind: str
    raw: bool
    reason: str
    detail: str
    ok: bool
    num_params: int | None
    seconds: float
    rss_delta_mb: float
    violations: list[str]

    @property
    def escaped(self) -> bool:
        return bool(self.violations)


HONEST = Payload("honest model", "honest", net(), expect_refused=False, honest_params=40)


def run_payload(sandbox: Any, payload: Payload, canaries: Canaries, *, input_shape=(1, 3, 8, 8)) -> Outcome:
    """Build ``payload`` in ``sandbox`` and check every canary; ``sandbox`` must match ``payload.raw``."""
    source = substitute(payload.source, canaries.values())
    extra = [HONEST] if payload.honest_next else []
    rss_before = rss_mb()
    started = time.monotonic()
    sources = [source] + [substitute(p.source, canaries.values()) for p in extra]
    results = sandbox.check_many(sources, input_shape, entries=["Net"] * len(sources))
    seconds = time.monotonic() - started
    result = results[0]
    rss_delta = rss_mb() - rss_before
    violations = canaries.violations(result.reason, result.detail, str(result.to_dict()))
    limits = sandbox.limits
    if seconds > len(sources) * limits.wall_s + WALL_SLACK_S:
        violations.append(f"caller waited {seconds:.1f} s (deadline {limits.wall_s:g} s + {WALL_SLACK_S:g} s)")
    if rss_delta > MEMORY_SLACK_MB:
        violations.append(f"caller memory grew by {rss_delta:.0f} MB")
    if payload.expect_refused and result.ok and not payload.residual:
        violations.append("accepted a result it should not have")
    if payload.honest_params is not None and result.ok and result.num_params != payload.honest_params:
        violations.append(f"parameter count {result.num_params} is not the real {payload.honest_params}")
    if not result.ok and not (result.reason and result.detail):
        violations.append("refused without a clear reason")
    if any(not ch.isprintable() for ch in result.detail) or len(result.detail) > 500:
        violations.append("the verdict's detail is not one short printable line")
    if sandbox.pid is not None:
        extra_procs = len(descendants(sandbox.pid)) - 2  # bubblewrap's init and the supervisor
        if extra_procs > 0:
            violations.append(f"{extra_procs} sandbox process(es) survived the payload")
    for other, res in zip(extra, results[1:]):
        if other.honest_params is not None and (not res.ok or res.num_params != other.honest_params):
            violations.append(f"the next source's verdict was tampered with: {res.reason} {res.num_params}")
    return Outcome(payload.name, payload.kind, payload.raw, result.reason or ("ok" if result.ok else ""),
                   result.detail, result.ok, result.num_params, seconds, rss_delta, violations)
