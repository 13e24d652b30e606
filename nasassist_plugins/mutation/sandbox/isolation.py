"""How the sandbox child is isolated by the operating system (caller side: builds the command).

**Strong isolation** (the default, required for generated code) runs the child under
Debian's ``bubblewrap`` (``bwrap``):

* new PID, network, IPC, UTS, mount (and cgroup) namespaces: the child sees only its own
  processes, has no network but a loopback of its own, and its whole process tree dies
  with the namespace (``--die-with-parent``, and the caller kills it at the deadline);
* a file system of its own: an empty read-only root with read-only binds of the system
  directories (``/usr``, ``/lib*``, ``/bin``...), the Python installation, the package
  directories it imports, and the caller's ``extra_paths``/``read_paths``; a fresh
  ``/proc``, a minimal ``/dev``, an empty ``/tmp`` (read-only when checking, a small
  size-capped tmpfs when training); nothing of the caller's home, working directory,
  ``/run`` sockets or ``/var``;
* an empty environment and only stdin/stdout/stderr inherited (``close_fds``);
* an unprivileged user: as root, ``bwrap`` runs privileged with every capability
  dropped but ``CAP_SETUID``/``CAP_SETGID``, which the child uses at once to become
  ``nobody`` (65534) for good; as another user, a user namespace maps that user (and
  nested user namespaces are disabled);
* seccomp filters and resource limits applied by the child itself before any
  generated code runs (see :mod:`.policy` and :mod:`.worker`).

The child reports what it sees (uid, PID, network interfaces, seccomp) in its first
message; :class:`IsolationReport` is built from that, not assumed. Where ``bwrap`` is
missing or cannot create namespaces, :func:`weak_command` runs the child as a plain
process with the same limits and seccomp filter but no namespaces, no private file
system and no change of user: the sandbox only uses it for code the user wrote (their
model, the offline mutator's edits of it), or for generated code with the explicit,
unsafe ``allow_weak_isolation`` opt-in.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from nasassist_plugins.mutation.redact import redact

__all__ = ["IsolationReport", "NOBODY", "bwrap_command", "find_bwrap", "install_hint", "namespace_fix",
           "sandbox_mounts", "verify_facts", "weak_command"]

#: The uid/gid the child runs as when the caller is root.
NOBODY = 65534
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d")


@dataclass(frozen=True)
class IsolationReport:
    """What isolates the sandbox child on this machine, as verified by the child itself.

    Attributes:
        strong: namespaces, a private read-only file system, no network, an unprivileged
            user and the seccomp filter are all in place (generated code may run).
        mechanism: ``"bubblewrap"`` or ``"process"`` (a plain child process: weak).
        detail: one line on what was verified, or why strong isolation is unavailable.
        fix: what to install or change to get strong isolation ("" when strong).
        uid: the child's user id as seen by the kernel outside any user namespace
            (``None`` when unknown).
        seccomp: whether the seccomp filter is loaded in the child.
        checks: each verified property (``pid-namespace``, ``no-network``,
            ``unprivileged-user``, ``no-new-privileges``, ``read-only-files``, ``seccomp``).

    Example::

        report = Sandbox().isolation
        if not report.strong:
            print(report.summary())  # "no strong isolation: ...; fix: install bubblewrap ..."
    """

    strong: bool
    mechanism: str
    detail: str
    fix: str = ""
    uid: int | None = None
    seccomp: bool = False
    checks: dict[str, bool] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for logs and the command line."""
        if self.strong:
            return f"strong isolation ({self.mechanism}): {self.detail}"
        return f"no strong isolation: {self.detail}" + (f"; fix: {self.fix}" if self.fix else "")

    def to_dict(self) -> dict[str, object]:
        return {"strong": self.strong, "mechanism": self.mechanism, "detail": self.detail, "fix": self.fix,
                "uid": self.uid, "seccomp": self.seccomp, "checks": dict(self.checks)}


def install_hint() -> str:
    """How to install bubblewrap and libseccomp on common systems."""
    return ("install bubblewrap and libseccomp (Debian/Ubuntu: sudo apt-get install bubblewrap libseccomp2; "
            "Fedora: sudo dnf install bubblewrap libseccomp) and the Python package pyseccomp")


def find_bwrap(path: str | None = None) -> str | None:
    """The ``bwrap`` executable: ``path`` when given (``None`` if it is not executable), else the one on ``PATH``."""
    if path is not None:
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    if not sys.platform.startswith("linux"):
        return None
    return shutil.which("bwrap") or next((p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.access(p, os.X_OK)), None)


def _python_dirs() -> list[str]:
    """Directories the child's interpreter needs: its installation, site-packages and this package."""
    import nasassist_plugins
    import nasassist_plugins.adapters

    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    prefixes = tuple(os.path.realpath(p) for p in dirs)
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if Path(real).name in {"site-packages", "dist-packages"} or real.startswith(prefixes):
            dirs.add(entry)
    dirs.update(nasassist_plugins.__path__)
    dirs.update(nasassist_plugins.adapters.__path__)
    for module in ("torch", "pyseccomp"):
        spec_origin = getattr(sys.modules.get(module), "__file__", None)
        if spec_origin is None:
            try:
                import importlib.util

                spec = importlib.util.find_spec(module)
                spec_origin = spec.origin if spec else None
            except (ImportError, ValueError):
                spec_origin = None
        if spec_origin:
            origin = Path(spec_origin).resolve()
            dirs.add(str(origin.parent.parent if origin.name == "__init__.py" else origin.parent))
    return sorted(d for d in dirs if d)


def sandbox_mounts(extra: Sequence[str] = ()) -> list[tuple[str, str]]:
    """``(source, destination)`` read-only binds for the child: Python, packages, ``extra``; parents first.

    A symlinked path is bound at its own name as well as at its target. Paths under the
    system directories (bound whole) and real paths under another bound real path are
    left out.
    """
    wanted: dict[str, str] = {}
    for path in [*_python_dirs(), *extra]:
        if not os.path.exists(path):
            continue
        real = os.path.realpath(path)
        wanted.setdefault(real, real)
        wanted.setdefault(os.path.abspath(path), real)
    system = tuple(d.rstrip("/") + "/" for d in _SYSTEM_DIRS)
    binds: list[tuple[str, str]] = []
    for dest in sorted(wanted, key=lambda d: (d.count("/"), d)):
        source = wanted[dest]
        if dest.startswith(system):
            continue
        if source == dest and any(s == d and dest.startswith(d.rstrip("/") + "/") for s, d in binds):
            continue
        binds.append((source, dest))
    return binds


def bwrap_command(bwrap: str, python: str, worker: str, *, root: bool, extra_paths: Sequence[str] = (),
                  writable_tmp_mb: float | None = None) -> list[str]:
    """The ``bwrap`` command line that runs ``python -I worker`` in a fresh sandbox.

    ``root``: the caller is root (privileged bwrap, the child drops to :data:`NOBODY`);
    otherwise a user namespace is used. ``writable_tmp_mb``: a writable ``/tmp`` of that
    size (training); ``None``: ``/tmp`` is empty and read-only.
    """
    cmd = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
           "--die-with-parent", "--new-session", "--clearenv"]
    if root:
        cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        cmd += ["--unshare-user", "--disable-userns"]
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            cmd += ["--ro-bind", d, d]
    for f in _SYSTEM_FILES:
        cmd += ["--ro-bind-try", f, f]
    binds = sandbox_mounts([worker, *extra_paths])
    dests = {dest for _, dest in binds}
    parents = sorted({str(parent) for _, dest in binds for parent in Path(dest).parents
                      if str(parent) != "/" and str(parent) not in dests}, key=lambda p: (p.count("/"), p))
    for parent in parents:  # world-traversable, or the unprivileged child could not reach the binds below
        if not any(parent.startswith(d.rstrip("/") + "/") for d in dests):
            cmd += ["--perms", "0755", "--dir", parent]
    for source, dest in binds:
        cmd += ["--ro-bind", source, dest]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
    if writable_tmp_mb is not None:
        cmd += ["--size", str(int(writable_tmp_mb * 1024 * 1024)), "--perms", "1777", "--tmpfs", "/tmp"]
    else:
        cmd += ["--tmpfs", "/tmp", "--remount-ro", "/tmp"]
    cmd += ["--remount-ro", "/", "--chdir", "/tmp", "--", python, "-I", "-B", worker]
    return cmd


def weak_command(python: str, worker: str) -> list[str]:
    """A plain child process (no namespaces): used only where strong isolation is not required."""
    return [python, "-I", "-B", worker]


def verify_facts(facts: Mapping[str, Any], mode: str, *, writable: bool, launched_uid: int) -> IsolationReport:
    """Strong isolation only if the child itself sees what bubblewrap promised.

    The kernel-level user: in privileged mode the child's user namespace is the initial
    one (identity map) and it must have become :data:`NOBODY` itself; in user-namespace
    mode it is whoever bubblewrap was started as (never root: the caller is not root, or
    bubblewrap was started as :data:`NOBODY`), whatever the map inside shows.
    """
    identity = facts.get("uid_map") == [[0, 0, 4294967295]]
    if mode == "privileged":
        uid = facts.get("uid") if identity and isinstance(facts.get("uid"), int) else None
    else:
        uid = launched_uid if not identity else None
    checks = {
        "pid-namespace": facts.get("pid") in (1, 2, 3),
        "no-network": facts.get("interfaces") in (["lo"], []),
        "unprivileged-user": uid not in (None, 0) and facts.get("cap_eff") == "0000000000000000",
        "no-new-privileges": facts.get("no_new_privs") is True,
        "read-only-files": writable or facts.get("cwd_writable") is False,
        "seccomp": facts.get("seccomp") is True,
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        detail = f"bubblewrap ({mode}) started, but the child failed these checks: {', '.join(failed)}"
        if not checks["seccomp"]:
            detail += f" ({redact(facts.get('seccomp_detail', ''), 200)})"
        return IsolationReport(False, "bubblewrap", detail, namespace_fix(), uid, checks["seccomp"], checks)
    detail = (f"bubblewrap ({mode}): own PID, network and mount namespaces, read-only file system, uid {uid}, "
              f"seccomp ({redact(facts.get('seccomp_detail', ''), 40)}), no new privileges")
    return IsolationReport(True, "bubblewrap", detail, "", uid, True, checks)


def namespace_fix() -> str:
    return ("let bubblewrap create namespaces: enable unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1 or user.max_user_namespaces>0; on Ubuntu 23.10+ an AppArmor "
            "profile that allows bwrap), or run in a container with CAP_SYS_ADMIN; " + install_hint())
