"""Starts a multi-worker lth_tf run on this machine: N worker processes on 127.0.0.1, one TF_CONFIG each.

    python -m lth_tf.launch --workers=2 -- --model=lenet300_100 --rounds=2 --output_dir=results/mw

Each worker runs `python -m lth_tf.main --strategy=multi_worker <flags>` with a generated TF_CONFIG
(free loopback ports; worker 0 is the chief and writes the results). Their output is streamed with a
prefix, `[worker 1] ...`. If any worker fails, the others are stopped (SIGTERM, then SIGKILL after
--grace_seconds), the launcher says which worker failed and exits non-zero; running the same command again
resumes (finished rounds are kept, the interrupted round continues from its last backup), except after a
refusal of the worker's flags or directory (exit 2) or a diverged round (exit 3), which the launcher names.

From Python (the tests use `command` to run stand-in workers):

    from lth_tf import launch
    code = launch.launch(["--rounds=2", "--output_dir=results/mw"], workers=2)
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


class LaunchError(Exception):
    """Bad launcher input; str(e) is one line."""


def free_ports(count: int, host: str = "127.0.0.1") -> list:
    """`count` distinct ports that were free a moment ago (the OS picks them; a tiny race remains)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)  # held open until all are chosen, so the OS never hands out one twice
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(count: int, host: str = "127.0.0.1", ports: list | None = None) -> list:
    """One TF_CONFIG dict per worker: the same cluster, task index i. Worker 0 is the chief."""
    ports = ports or free_ports(count, host)
    cluster = {"worker": [f"{host}:{port}" for port in ports]}
    return [{"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(count)]


def _die_with_parent():  # runs in the child before exec: a SIGKILLed launcher takes its workers with it
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _check_args(main_args: list) -> list:
    out = []
    for arg in main_args:
        if arg.startswith("--strategy"):
            value = arg.split("=", 1)[1] if "=" in arg else ""
            if value != "multi_worker":
                raise LaunchError(f"the launcher runs --strategy=multi_worker; remove '{arg}'")
            continue
        out.append(arg)
    return out


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


# lth_tf.main's exit codes that running the same command again cannot change (lth_tf.main.DIVERGED).
_BAD_INPUT, _DIVERGED = 2, 3


def _after_failure(code: int) -> str:
    """What to do after a worker failed with exit `code`: resuming helps only where the input was fine."""
    if code == _BAD_INPUT:
        return "Its flags or results directory were refused (its error line is above): fix them, then run again."
    if code == _DIVERGED:
        return "Training diverged (see its line above): resuming would diverge again; change the settings."
    return "Run the same command again to resume."


def launch(main_args: list, workers: int = 2, host: str = "127.0.0.1", command: list | None = None,
           grace_seconds: float = 5.0, out=None) -> int:
    """Runs `workers` processes to the end; returns 0 if all succeed, else a non-zero code.

    command: the worker program (default: this Python running lth_tf.main --strategy=multi_worker);
    main_args are appended to it.
    """
    if workers < 1:
        raise LaunchError(f"--workers must be >= 1, got {workers}")
    out = out or sys.stdout
    args = _check_args(list(main_args))
    command = command or [sys.executable, "-m", "lth_tf.main", "--strategy=multi_worker"]
    print_lock = threading.Lock()

    def say(line):
        with print_lock:
            out.write(line + "\n")
            out.flush()

    configs = tf_configs(workers, host)
    say(f"lth_tf.launch: starting {workers} worker{'s' if workers > 1 else ''} at "
        f"{', '.join(configs[0]['cluster']['worker'])}; worker 0 is the chief and writes the results")
    procs = []
    for config in configs:
        env = dict(os.environ, TF_CONFIG=json.dumps(config), PYTHONUNBUFFERED="1")
        procs.append(subprocess.Popen(command + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True,
                                      preexec_fn=_die_with_parent))

    def pump(index, proc):
        for raw in iter(proc.stdout.readline, b""):
            say(f"[worker {index}] {raw.decode(errors='replace').rstrip()}")
        proc.stdout.close()

    readers = [threading.Thread(target=pump, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for reader in readers:
        reader.start()

    def stop_all():
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        while True:
            codes = [proc.poll() for proc in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                index, code = failed[0]
                stop_all()
                for reader in readers:
                    reader.join(timeout=2)
                say(f"lth_tf.launch: error: worker {index} {_describe_exit(code)}; stopped the other workers. "
                    + _after_failure(code))
                return code if code > 0 else 1
            if all(c == 0 for c in codes):
                for reader in readers:
                    reader.join(timeout=5)
                return 0
            time.sleep(0.1)
    except KeyboardInterrupt:
        stop_all()
        say("lth_tf.launch: interrupted; stopped all workers. Run the same command again to resume.")
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        cut = argv.index("--")
        own, main_args = argv[:cut], argv[cut + 1:]
    else:
        own, main_args = argv, []
    parser = argparse.ArgumentParser(
        prog="python -m lth_tf.launch", description="Run lth_tf.main on N local workers "
        "(MultiWorkerMirroredStrategy over loopback).", usage="%(prog)s [--workers=N] -- <lth_tf.main flags>")
    parser.add_argument("--workers", type=int, default=2, help="number of worker processes (default 2)")
    parser.add_argument("--host", default="127.0.0.1", help="address the workers listen on (default 127.0.0.1)")
    parser.add_argument("--grace_seconds", type=float, default=5.0,
                        help="how long stopped workers get to exit before SIGKILL (default 5)")
    options, unknown = parser.parse_known_args(own)
    main_args = unknown + main_args  # lth_tf.main flags given without "--" are passed on too
    try:
        return launch(main_args, workers=options.workers, host=options.host, grace_seconds=options.grace_seconds)
    except LaunchError as e:
        print(f"lth_tf.launch: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
