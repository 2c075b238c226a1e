#!/usr/bin/env python3
"""An auth.log for the guard benchmark: N RFC 3164 lines ending now (5000 a second), half of
them sshd failures from a pool of IPv4 and IPv6 attackers (invalid users, failed passwords,
preauth disconnects, as OpenSSH 9.2 writes them), the rest what a busy host also logs (cron
sessions, good logins and logouts, systemd, postfix).

usage: authlog.py N [--distinct]   (--distinct: every failure from a new address, for ban rates)
"""
import random
import sys
import time

n = int(sys.argv[1])
distinct = "--distinct" in sys.argv
rnd = random.Random(7)
now = time.time()
pool4 = [f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}" for _ in range(20000)]
pool6 = [f"2001:db8:{rnd.randint(0, 0xffff):x}:{rnd.randint(0, 0xffff):x}::{rnd.randint(1, 0xffff):x}" for _ in range(5000)]
users = ["admin", "root", "test", "oracle", "ubuntu", "git", "postgres", "user", "pi", "guest"]
benign = [
    "CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
    "CRON[{pid}]: pam_unix(cron:session): session closed for user root",
    "sshd[{pid}]: Accepted publickey for deploy from 192.0.2.10 port {port} ssh2: ED25519 SHA256:AbCdEf",
    "sshd[{pid}]: pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)",
    "sshd[{pid}]: Received disconnect from 192.0.2.10 port {port}:11: disconnected by user",
    "systemd[1]: Started session-{pid}.scope - Session {pid} of User deploy.",
    "systemd-logind[412]: New session {pid} of user deploy.",
    "postfix/smtpd[{pid}]: connect from mail.example.org[198.51.100.25]",
    "sudo[{pid}]:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/systemctl status",
]


def stamp(t):
    return time.strftime("%b %e %H:%M:%S", time.localtime(t))


def attacker(i):
    if distinct:
        return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" if i % 5 else f"2001:db8:{i >> 16:x}:{i & 0xffff:x}::1"
    return rnd.choice(pool6) if rnd.random() < 0.2 else rnd.choice(pool4)


out = sys.stdout
for i in range(n):
    t = now - (n - i) / 5000.0
    pid = rnd.randint(1000, 99999)
    port = rnd.randint(1024, 65535)
    if i % 2 == 0:
        a = attacker(i)
        u = rnd.choice(users)
        k = rnd.randint(0, 3)
        if distinct or k == 0:
            msg = f"sshd[{pid}]: Invalid user {u} from {a} port {port}"
        elif k == 1:
            msg = f"sshd[{pid}]: Failed password for invalid user {u} from {a} port {port} ssh2"
        elif k == 2:
            msg = f"sshd[{pid}]: Failed password for root from {a} port {port} ssh2"
        else:
            msg = f"sshd[{pid}]: Connection closed by invalid user {u} {a} port {port} [preauth]"
    else:
        msg = rnd.choice(benign).format(pid=pid, port=port)
    out.write(f"{stamp(t)} web1 {msg}\n")
