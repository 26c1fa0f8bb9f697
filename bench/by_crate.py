#!/usr/bin/env python3
"""Instructions per request by crate, from a callgrind profile kept by bench/instructions.sh.

    KEEP=/tmp/prof bench/instructions.sh 10
    bench/by_crate.py /tmp/prof/rule-path-medmij-vert-proxy.out REQUESTS

Self cost of every function, summed by the crate its symbol names (medmij_vert_proxy split by
module); libc's memcpy and the allocator apart. REQUESTS is the count instructions.sh printed.
"""
import re
import subprocess
import sys
from collections import Counter

profile, requests = sys.argv[1], int(sys.argv[2])
out = subprocess.run(["callgrind_annotate", "--threshold=100", profile],
                     capture_output=True, text=True, check=True).stdout
groups = Counter()
for line in out.splitlines():
    m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*)$", line)
    if not m or "PROGRAM TOTALS" in line:
        continue
    cost, name = int(m.group(1).replace(",", "")), m.group(2)
    fn = name.split(":", 1)[1] if ":" in name else name
    fn = fn.rsplit(" [", 1)[0]
    if "memcpy" in fn or "memmove" in fn or "memset" in fn:
        key = "libc memcpy/memset (moves)"
    elif fn.startswith("mi_") or fn.startswith("_mi_"):
        key = "mimalloc"
    elif fn.startswith(("aws_lc", "aead_aes_gcm_siv", "GFMUL")):
        # aws-lc's C and assembly (the sealed state's AES-256-GCM-SIV): unmangled symbols.
        key = "aws_lc (C and assembly)"
    else:
        # The first path segment that is not a generic wrapper: `<a::b as c>::f` → a.
        path = fn.lstrip("<&*( ")
        parts = re.split(r"::|<| as ", path)
        key = parts[0] if parts else fn
        if key == "medmij_vert_proxy" and len(parts) > 1:
            key = "medmij_vert_proxy::" + parts[1]
        if key in ("core", "alloc", "std"):
            key = "std (core/alloc)"
        if "libc.so" in name and key not in ("mimalloc",):
            key = "libc (other)"
    groups[key] += cost
total = sum(groups.values())
print(f"{total // requests:>8}  total per request")
for key, cost in groups.most_common(int(sys.argv[3]) if len(sys.argv) > 3 else 25):
    print(f"{cost // requests:>8}  {key}")
