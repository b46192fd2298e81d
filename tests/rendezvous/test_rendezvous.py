#!/usr/bin/python3
# test_rendezvous.py: natter-rendezvous against a third-party WebSocket client
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Starts the real server on 127.0.0.1 with a free port and talks to it with
# python3-websockets, signing with PyNaCl, so nothing here shares code with
# the server.  Usage: test_rendezvous.py PATH-TO-natter-rendezvous.  TAP.

import asyncio
import base64
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

try:
    import websockets
    import nacl.bindings
    import nacl.public
    import nacl.signing
except ImportError as e:
    print(f"1..0 # SKIP {e.name} is missing (python3-websockets, python3-nacl)")
    sys.exit(0)

SERVER = sys.argv[1]
CONTEXT = b"natter-rendezvous-register-v1\0"
TIMEOUT = 5

results = []


def ok(cond, name, diag=None):
    results.append(bool(cond))
    n = len(results)
    print(f"{'ok' if cond else 'not ok'} {n} - {name}", flush=True)
    if not cond and diag is not None:
        for line in str(diag).splitlines():
            print(f"# {line}", flush=True)


class Identity:
    def __init__(self):
        self.key = nacl.signing.SigningKey.generate()
        pk = bytes(self.key.verify_key)
        checksum = hashlib.blake2b(pk, digest_size=32, key=b"natter-peer-id-v1").digest()[:4]
        self.peer_id = "n" + base64.b32encode(pk + checksum).decode().rstrip("=").lower()
        self.x25519_public = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(pk)
        self.x25519_secret = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(
            bytes(self.key) + pk)

    def sign(self, data):
        return self.key.sign(data).signature


def seal_to(identity, plaintext):
    return nacl.public.SealedBox(nacl.public.PublicKey(identity.x25519_public)).encrypt(plaintext)


def open_as(identity, sealed):
    return nacl.public.SealedBox(nacl.public.PrivateKey(identity.x25519_secret)).decrypt(sealed)


class Server:
    def __init__(self, *args, env=None):
        self.log = tempfile.NamedTemporaryFile(prefix="natter-rendezvous-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([SERVER, "--listen", "127.0.0.1", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            raise RuntimeError(f"server did not start: {line!r}")
        self.url = line.split("listening on ", 1)[1].strip()

    def stop(self):
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = -9
        self.log.close()
        return code

    def read_log(self):
        with open(self.log.name, "rb") as f:
            return f.read()

    def finish(self, name):
        """Stops the server and checks it exits cleanly, also under sanitizers."""
        code = self.stop()
        log = self.read_log()
        os.unlink(self.log.name)
        bad = [m for m in (b"runtime error:", b"AddressSanitizer", b"LeakSanitizer",
                           b"CRITICAL", b"WARNING") if m in log]
        ok(code == 0 and not bad, f"the {name} server exits cleanly on SIGTERM",
           f"exit code {code}, {bad}\n" + log[-3000:].decode(errors="replace"))
        return log


async def recv_json(ws, timeout=TIMEOUT):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def connect(server, ssl_context=None):
    ws = await websockets.connect(server.url, max_size=None, ping_interval=None,
                                  open_timeout=TIMEOUT, close_timeout=2, ssl=ssl_context)
    challenge = await recv_json(ws)
    assert challenge["type"] == "challenge", challenge
    return ws, base64.b64decode(challenge["challenge"])


def register_message(identity, challenge, signer=None):
    signer = signer or identity
    sig = signer.sign(CONTEXT + challenge + identity.peer_id.encode())
    return json.dumps({"type": "register", "peer": identity.peer_id,
                       "signature": base64.b64encode(sig).decode()})


async def register(server, identity, contacts=(), ssl_context=None):
    ws, challenge = await connect(server, ssl_context)
    await ws.send(register_message(identity, challenge))
    reply = await recv_json(ws)
    assert reply == {"type": "registered", "peer": identity.peer_id}, reply
    if contacts:
        await ws.send(json.dumps({"type": "contacts", "peers": [c.peer_id for c in contacts]}))
    return ws


async def closed_with(ws):
    """Waits for the server to close @ws; returns (code, reason)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    return ws.close_code, ws.close_reason


async def no_message(ws, wait=0.5):
    try:
        msg = await asyncio.wait_for(ws.recv(), wait)
        return msg
    except asyncio.TimeoutError:
        return None


async def signal_round_trip(a_ws, a, b_ws, b, text=b"hello"):
    sealed = seal_to(b, text)
    await a_ws.send(json.dumps({"type": "signal", "to": b.peer_id,
                                "blob": base64.b64encode(sealed).decode()}))
    msg = await recv_json(b_ws)
    return (msg.get("type") == "signal" and msg.get("from") == a.peer_id
            and open_as(b, base64.b64decode(msg["blob"])) == text)


async def main_tests(server):
    alice, bob, carol, mallory = Identity(), Identity(), Identity(), Identity()

    # Registration.
    a_ws = await register(server, alice, contacts=[bob])
    b_ws = await register(server, bob, contacts=[alice])
    msg_a = await recv_json(a_ws)
    msg_b = await recv_json(b_ws)
    ok(msg_a == {"type": "presence", "peer": bob.peer_id, "online": True}
       and msg_b == {"type": "presence", "peer": alice.peer_id, "online": True},
       "mutual contacts learn each other's presence", (msg_a, msg_b))
    ok(await signal_round_trip(a_ws, alice, b_ws, bob), "a signal reaches a mutual contact")

    # A signature by another key is refused.
    ws, challenge = await connect(server)
    await ws.send(register_message(bob, challenge, signer=mallory))
    code, reason = await closed_with(ws)
    ok(code == 4001 and "signature" in reason,
       "registering an ID without its key is refused", (code, reason))

    # A signature over the wrong bytes (no context) is refused.
    ws, challenge = await connect(server)
    sig = mallory.sign(challenge + mallory.peer_id.encode())
    await ws.send(json.dumps({"type": "register", "peer": mallory.peer_id,
                              "signature": base64.b64encode(sig).decode()}))
    code, reason = await closed_with(ws)
    ok(code == 4001, "a signature without the domain context is refused", (code, reason))

    # A replayed registration: a valid one, sent again on a new connection.
    ws1, challenge1 = await connect(server)
    recorded = register_message(carol, challenge1)
    await ws1.send(recorded)
    ok((await recv_json(ws1))["type"] == "registered", "carol registers")
    await ws1.send(recorded)
    code, reason = await closed_with(ws1)
    ok(code == 4000 and "already registered" in reason,
       "a registration replayed on its own connection is refused", (code, reason))
    ws2, _ = await connect(server)
    await ws2.send(recorded)
    code, reason = await closed_with(ws2)
    ok(code == 4001 and "replayed" in reason,
       "a registration replayed on a new connection is refused", (code, reason))

    # Sending as another ID.
    c_ws = await register(server, carol, contacts=[bob])
    sealed = seal_to(bob, b"forged")
    await c_ws.send(json.dumps({"type": "signal", "to": bob.peer_id, "from": alice.peer_id,
                                "blob": base64.b64encode(sealed).decode()}))
    code, reason = await closed_with(c_ws)
    ok(code == 4000 and "from" in reason, "a signal naming its own sender is refused", (code, reason))
    ok(await no_message(b_ws) is None, "bob got nothing from the forged signal")
    ok(await signal_round_trip(a_ws, alice, b_ws, bob, b"still here"),
       "the sender bob sees is alice's authenticated ID")

    # A stranger learns nothing: carol lists bob, bob does not list carol.
    c_ws = await register(server, carol, contacts=[bob, alice])
    ok(await no_message(c_ws) is None, "a stranger listing a peer gets no presence")
    stranger_reply = None
    await c_ws.send(json.dumps({"type": "signal", "to": bob.peer_id,
                                "blob": base64.b64encode(seal_to(bob, b"hi")).decode()}))
    stranger_reply = await recv_json(c_ws)
    ok(stranger_reply == {"type": "undeliverable", "to": bob.peer_id},
       "a signal to an online non-contact is undeliverable", stranger_reply)
    ok(await no_message(b_ws) is None, "bob got nothing from the stranger")
    await c_ws.send(json.dumps({"type": "signal", "to": mallory.peer_id,
                                "blob": base64.b64encode(seal_to(mallory, b"hi")).decode()}))
    offline_reply = await recv_json(c_ws)
    ok(set(offline_reply) == set(stranger_reply) and offline_reply["type"] == "undeliverable",
       "a signal to an offline peer gets the same reply", offline_reply)

    # Mutual contact going offline: alice is told, carol is not.
    await b_ws.close()
    msg = await recv_json(a_ws)
    ok(msg == {"type": "presence", "peer": bob.peer_id, "online": False},
       "a mutual contact learns of going offline", msg)
    ok(await no_message(c_ws) is None, "the stranger learns nothing of it")
    await a_ws.send(json.dumps({"type": "signal", "to": bob.peer_id,
                                "blob": base64.b64encode(seal_to(bob, b"x")).decode()}))
    msg = await recv_json(a_ws)
    ok(msg == {"type": "undeliverable", "to": bob.peer_id},
       "a signal to an offline contact is undeliverable, as to a stranger", msg)

    b_ws = await register(server, bob, contacts=[alice])
    msg = await recv_json(a_ws)
    ok(msg == {"type": "presence", "peer": bob.peer_id, "online": True}, "bob back online", msg)
    await recv_json(b_ws)

    # A newer connection for the same ID replaces the older.
    b2_ws = await register(server, bob, contacts=[alice])
    code, reason = await closed_with(b_ws)
    ok(code == 4003 and "replaced" in reason, "the older connection is replaced", (code, reason))
    b_ws = b2_ws
    await recv_json(b_ws)  # alice online, seen from the new connection
    ok(await signal_round_trip(a_ws, alice, b_ws, bob, b"to the new one"),
       "signals go to the newer connection")
    while await no_message(a_ws, 0.3) is not None:
        pass

    # Oversized frame.
    big_ws, _ = await connect(server)
    try:
        await big_ws.send(json.dumps({"type": "ping", "pad": "x" * (70 * 1024)}))
    except websockets.ConnectionClosed:
        pass
    code, reason = await closed_with(big_ws)
    ok(code == 1009 and "65536" in reason, "an oversized frame is cut off with 1009 and a reason",
       (code, reason))
    huge_ws, _ = await connect(server)
    try:
        await huge_ws.send(b"\x00" * (1024 * 1024))
    except websockets.ConnectionClosed:
        pass
    code, reason = await closed_with(huge_ws)
    ok(code in (1009, 1006), "a 1 MiB frame is cut off", (code, reason))
    ok(await signal_round_trip(a_ws, alice, b_ws, bob, b"after big"),
       "a well-behaved client keeps working after the oversized frame")

    # Flood.
    flood_ws = await register(server, mallory)
    sent = 0
    try:
        for _ in range(1000):
            await flood_ws.send('{"type":"ping"}')
            sent += 1
    except websockets.ConnectionClosed:
        pass
    code, reason = await closed_with(flood_ws)
    ok(code == 4004 and "rate" in reason, f"a flood is cut off ({sent} sent)", (code, reason))
    ok(await signal_round_trip(a_ws, alice, b_ws, bob, b"after flood"),
       "a well-behaved client keeps working after the flood")

    # Malformed input.
    for name, frame in [("not JSON", "{nope"),
                        ("too deep", "[" * 100 + "]" * 100),
                        ("duplicate member", '{"type":"ping","type":"ping"}'),
                        ("unknown type", '{"type":"shout"}'),
                        ("bad peer ID", '{"type":"register","peer":"nxyz","signature":"AA=="}'),
                        ("binary frame", b"\x00\x01")]:
        ws, _ = await connect(server)
        await ws.send(frame)
        code, reason = await closed_with(ws)
        ok(code in (4000, 1003), f"malformed input ({name}) is refused", (code, reason))

    ws, _ = await connect(server)
    await ws.send(json.dumps({"type": "contacts", "peers": []}))
    code, reason = await closed_with(ws)
    ok(code == 4000 and "not registered" in reason, "nothing but register before registration",
       (code, reason))

    ws = await register(server, carol)
    await ws.send(json.dumps({"type": "contacts", "peers": [Identity().peer_id for _ in range(1025)]}))
    code, reason = await closed_with(ws)
    ok(code == 4000 and "1024" in reason, "more than 1024 contacts are refused", (code, reason))

    # A client that stops reading: signals to it pile up.  It is cut off
    # rather than making the server hold them.
    sleeper = Identity()
    host, port = server.url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    s_ws = await websockets.connect(server.url, sock=sock, max_queue=1, read_limit=1024,
                                    max_size=None, ping_interval=None, open_timeout=TIMEOUT)
    challenge = base64.b64decode((await recv_json(s_ws))["challenge"])
    await s_ws.send(register_message(sleeper, challenge))
    await recv_json(s_ws)
    await s_ws.send(json.dumps({"type": "contacts", "peers": [alice.peer_id]}))
    await a_ws.send(json.dumps({"type": "contacts", "peers": [bob.peer_id, sleeper.peer_id]}))
    msg = await recv_json(a_ws)
    ok(msg == {"type": "presence", "peer": sleeper.peer_id, "online": True}, "the sleeper is online", msg)
    big_blob = base64.b64encode(os.urandom(16 * 1024)).decode()
    cut_off = None
    for _ in range(400):
        await a_ws.send(json.dumps({"type": "signal", "to": sleeper.peer_id, "blob": big_blob}))
        reply = await no_message(a_ws, 0.03)
        if reply is not None:
            cut_off = json.loads(reply)
            if cut_off.get("type") == "presence":
                break
    ok(cut_off == {"type": "presence", "peer": sleeper.peer_id, "online": False},
       "a client that stops reading is cut off", cut_off)
    s_ws.transport.abort()
    await closed_with(s_ws)

    ok(await signal_round_trip(a_ws, alice, b_ws, bob, b"at the end"),
       "the server still serves its clients at the end")
    await a_ws.close()
    await b_ws.close()


async def lazy_registration(server):
    """Connects and never registers; runs beside the main tests."""
    ws, _ = await connect(server)
    start = time.monotonic()
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 20)
    except (websockets.ConnectionClosed, asyncio.TimeoutError):
        pass
    await ws.wait_closed()
    elapsed = time.monotonic() - start
    ok(ws.close_code == 4002 and "timed out" in ws.close_reason and 9 <= elapsed <= 13,
       "a client that does not register in 10 s is closed", (ws.close_code, ws.close_reason, elapsed))


async def blob_tests(server):
    alice, bob = Identity(), Identity()
    secret = b"ice-credentials SECRETUFRAG SECRETPASSWORD0123456789"
    a_ws = await register(server, alice, contacts=[bob])
    b_ws = await register(server, bob, contacts=[alice])
    await recv_json(a_ws)
    await recv_json(b_ws)
    sealed = seal_to(bob, secret)
    await a_ws.send(json.dumps({"type": "signal", "to": bob.peer_id,
                                "blob": base64.b64encode(sealed).decode()}))
    msg = await recv_json(b_ws)
    forwarded = base64.b64decode(msg["blob"])
    ok(forwarded == sealed, "the server forwards exactly the sealed bytes")
    ok(open_as(bob, forwarded) == secret, "the recipient opens the blob")
    await a_ws.close()
    await b_ws.close()
    await asyncio.sleep(0.3)
    return sealed, secret


async def limit_tests():
    server = Server("--max-connections", "2")
    try:
        ws1, _ = await connect(server)
        ws2, _ = await connect(server)
        ws3 = await websockets.connect(server.url, ping_interval=None, open_timeout=TIMEOUT)
        code, reason = await closed_with(ws3)
        ok(code == 4006 and "full" in reason, "past --max-connections a client is told the server is full",
           (code, reason))
        await ws1.close()
        await asyncio.sleep(0.3)
        ws4, _ = await connect(server)
        ok(await no_message(ws4, 0.3) is None, "a place frees up when a client leaves")
        await ws2.close()
        await ws4.close()
    finally:
        server.finish("limited")

    server = Server("--idle-timeout", "1")
    try:
        ws = await register(server, Identity())
        code, reason = await closed_with(ws)
        ok(code == 4005 and "idle" in reason, "an idle client is closed", (code, reason))
    finally:
        server.finish("idle")


async def tls_tests():
    if shutil.which("openssl") is None:
        ok(True, "# SKIP TLS: no openssl to make a certificate")
        return
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        # In a sanitizer build, LeakSanitizer's own tracer crashes ("Tracer
        # caught signal 11") at exit once GnuTLS, loaded by glib-networking,
        # has run on GLib's worker threads: a libsanitizer fault, not a leak.
        # AddressSanitizer and UBSan still watch this server; leaks are
        # checked on the others, which run the same code without TLS.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "detect_leaks=0"]))
        server = Server("--tls-cert", cert, "--tls-key", key, env=env)
        try:
            ok(server.url.startswith("wss://"), "with a certificate the server speaks wss", server.url)
            context = ssl.create_default_context(cafile=cert)
            alice, bob = Identity(), Identity()
            a_ws = await register(server, alice, [bob], ssl_context=context)
            b_ws = await register(server, bob, [alice], ssl_context=context)
            await recv_json(a_ws)
            await recv_json(b_ws)
            ok(await signal_round_trip(a_ws, alice, b_ws, bob, b"over tls"),
               "registration and signaling work over TLS")
            await a_ws.close()
            await b_ws.close()
        finally:
            server.finish("TLS")


async def run():
    server = Server("--verbose")
    try:
        await asyncio.gather(main_tests(server), lazy_registration(server))
        ok(server.proc.poll() is None, "the server is still running")
    finally:
        server.finish("main")

    server = Server("--verbose", "--dump-frames")
    try:
        sealed, secret = await blob_tests(server)
    finally:
        log = server.finish("dumping")
    ok(base64.b64encode(sealed) in log, "the dump shows the frames the server saw")
    ok(b"SECRET" not in log and b"ice-credentials" not in log
       and base64.b64encode(secret) not in log,
       "the plaintext of the sealed blob never reaches the server")

    await limit_tests()
    await tls_tests()


def main():
    try:
        asyncio.run(run())
    except Exception as e:  # report, do not hide, an unexpected failure
        ok(False, f"unexpected {type(e).__name__}", repr(e))
    print(f"1..{len(results)}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
