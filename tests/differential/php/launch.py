"""Starts `php -S` on a free port: php -S cannot listen on port 0, so a port is
picked by binding port 0 here, closing it and handing it to php (retried if php
loses the race). Prints `LISTENING <port>` once php accepts connections and stays
in front of php until SIGTERM, which it forwards."""
import os
import signal
import socket
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
for attempt in range(10):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    # stdout -> stderr: only the LISTENING line may appear on our stdout.
    # A session of its own: with PHP_CLI_SERVER_WORKERS php forks workers, and the whole
    # group must go when we do.
    php = subprocess.Popen(["php", "-S", f"127.0.0.1:{port}", "-t", here, os.path.join(here, "router.php")],
                           stdout=sys.stderr, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while php.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        os.killpg(php.pid, signal.SIGKILL)
        php.wait()
        continue
    signal.signal(signal.SIGTERM, lambda *_: os.killpg(php.pid, signal.SIGTERM))
    print(f"LISTENING {port}", flush=True)
    rc = php.wait()
    sys.exit(0 if rc == -signal.SIGTERM else rc)
sys.exit("php -S did not start")
