"""The seccomp filters of the sandbox child (installed by :mod:`.worker`, never in the caller).

Two stages, each a deny list on top of "allow" (filters stack: the builder has both):

* **supervisor** — installed once, after the trusted side of the child has imported
  torch: no sockets, no ptrace or access to other processes' memory, no mounts,
  namespaces, keyrings, BPF, perf, ``userfaultfd``, ``io_uring``, kernel modules, clocks,
  reboot or swap, and no ``clone`` with namespace flags;
* **builder** — installed in each forked builder just before generated code runs: on
  top of the above, no new processes (``fork``/``vfork``/``clone`` without
  ``CLONE_THREAD``; ``clone3`` answers ``ENOSYS`` so threads fall back to ``clone``), no
  ``execve``, no signals to any other process, no System V IPC or POSIX message queues
  (memory that would outlive the builder), no changing the priority or limits of another
  process. Threads stay allowed; with no new processes, ``RLIMIT_AS`` bounds the
  builder's whole memory.

Denied calls fail with ``EPERM`` (the builder reports a readable error) rather than
killing the process. The filters are compiled by libseccomp through the ``pyseccomp``
bindings (syscall names resolved for the running architecture); where libseccomp is
missing :func:`install` raises :class:`SeccompUnavailable` and the sandbox does not count
as strong isolation.
"""

from __future__ import annotations

import errno
import os

__all__ = ["BUILDER_DENY", "SUPERVISOR_DENY", "SeccompUnavailable", "install"]

SUPERVISOR_DENY = (
    "socket", "socketpair", "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "move_mount", "open_tree", "fsopen",
    "fsmount", "fsconfig", "fspick", "mount_setattr", "keyctl", "add_key", "request_key", "bpf",
    "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "acct", "syslog", "quotactl", "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
    "fanotify_init", "iopl", "ioperm", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "vhangup", "uselib", "nfsservctl", "personality",
)  # fmt: skip
BUILDER_DENY = (
    "fork", "vfork", "execve", "execveat", "kill", "tkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "pidfd_send_signal", "pidfd_open", "shmget", "shmat", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl",
    "semget", "semop", "semtimedop", "semctl", "mq_open", "mq_timedsend", "mq_notify", "setpgid", "setsid",
)  # fmt: skip
# System calls that name a target process: allowed only on the caller itself (argument index of the pid; 0 = self).
_SELF_ONLY = {"prlimit64": 0, "setpriority": 1, "ioprio_set": 1, "sched_setscheduler": 0, "sched_setparam": 0,
              "sched_setattr": 0, "sched_setaffinity": 0}
# Calls every architecture's libseccomp knows: failing to add one of these is an error, not a skip.
_REQUIRED = frozenset({"socket", "socketpair", "ptrace", "process_vm_readv", "process_vm_writev", "mount", "unshare",
                       "setns", "bpf", "keyctl", "perf_event_open", "execve", "execveat", "kill", "clone", "clone3",
                       "tgkill", "prlimit64", "shmget", "msgget", "semget"})
_CLONE_THREAD = 0x00010000
_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)


class SeccompUnavailable(RuntimeError):
    """libseccomp (or its Python bindings) cannot be loaded here."""


def _find_library(original):
    """``ctypes.util.find_library`` that asks the dynamic loader first (no ``ldconfig``/``gcc`` subprocess)."""
    import ctypes

    def find(name: str):
        for candidate in (f"lib{name}.so.6", f"lib{name}.so.2", f"lib{name}.so"):
            try:
                ctypes.CDLL(candidate)
                return candidate
            except OSError:
                continue
        return original(name)

    return find


def _load():
    import ctypes.util

    original = ctypes.util.find_library
    ctypes.util.find_library = _find_library(original)
    try:
        import pyseccomp
    except Exception as exc:  # noqa: BLE001 - ImportError, or RuntimeError when libseccomp.so is missing
        raise SeccompUnavailable(f"libseccomp is not usable ({type(exc).__name__}: {exc}); install the Debian "
                                 "package libseccomp2 and the Python package pyseccomp") from None
    finally:
        ctypes.util.find_library = original
    return pyseccomp


def install(stage: str) -> int:
    """Install the ``stage`` filter (``"supervisor"`` or ``"builder"``) in this process; returns the rule count."""
    if stage not in {"supervisor", "builder"}:
        raise ValueError(f"unknown seccomp stage {stage!r}")
    sc = _load()
    deny = sc.ERRNO(errno.EPERM)
    rules = 0
    try:
        flt = sc.SyscallFilter(defaction=sc.ALLOW)

        def add(action: int, name: str, *args: object) -> None:
            nonlocal rules
            try:
                flt.add_rule(action, name, *args)
                rules += 1
            except (ValueError, OSError, RuntimeError):
                if name in _REQUIRED:
                    raise
                # otherwise: a call this libseccomp does not know (newer than it); nothing can make it either

        for name in SUPERVISOR_DENY:
            add(deny, name)
        for flag in _NAMESPACE_FLAGS:
            add(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        if stage == "builder":
            me = os.getpid()
            for name in BUILDER_DENY:
                add(deny, name)
            add(deny, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
            add(sc.ERRNO(errno.ENOSYS), "clone3")
            add(deny, "tgkill", sc.Arg(0, sc.NE, me))  # raise() signals its own thread group only
            for name, index in _SELF_ONLY.items():
                add(deny, name, sc.Arg(index, sc.NE, 0))
        flt.load()
    except SeccompUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - libseccomp refused (old kernel, no seccomp support)
        raise SeccompUnavailable(f"the seccomp filter could not be loaded ({type(exc).__name__}: {exc})") from None
    return rules
