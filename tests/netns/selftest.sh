#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Proves that the netns topology (topology.sh) behaves as documented, with
# real tools: coturn's turnutils_* clients and python3 sockets.  Prints TAP;
# exits 0 when every test passed, 1 on any failure; when the machine cannot
# run it, it prints the TAP skip plan "1..0 # SKIP reason" and exits 0
# (1 instead, with NATTER_NO_SKIP=1).
#
# All traffic stays inside namespaces this script creates.

set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=topology.sh
. "$HERE/topology.sh"

PLAN=17
reason=$(nt_check 2>&1)
rc=$?
if ((rc != 0)); then
    reason=$(sed -e 's/^SKIP: //' -e 's/^FAIL: //' <<<"$reason")
    if ((rc == 77)); then
        echo "1..0 # SKIP $reason"
        exit 0
    fi
    echo "Bail out! $reason"
    exit 1
fi

PY=$(command -v /usr/bin/python3 python3 2>/dev/null | head -n 1)
if [[ -z $PY ]]; then
    if [[ ${NATTER_NO_SKIP:-0} == 1 ]]; then echo "Bail out! python3 not found"; exit 1; fi
    echo "1..0 # SKIP python3 not found"
    exit 0
fi
for t in turnutils_stunclient turnutils_uclient turnutils_natdiscovery timeout; do
    if ! command -v "$t" >/dev/null 2>&1; then
        if [[ ${NATTER_NO_SKIP:-0} == 1 ]]; then echo "Bail out! $t not found"; exit 1; fi
        echo "1..0 # SKIP $t not found (apt-get install coturn)"
        exit 0
    fi
done

cleanup() {
    local tag
    nt_down >/dev/null 2>&1
    # Topologies made through the CLI were given this script as their owner.
    while read -r tag; do
        [[ $(cat "$(_nt_state_dir "$tag")/owner" 2>/dev/null) == "$$" ]] && nt_down "$tag" >/dev/null 2>&1
    done < <(nt_list 2>/dev/null)
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- TAP helpers -------------------------------------------------------------
N=0
FAILS=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
not_ok() {
    N=$((N + 1)); FAILS=$((FAILS + 1))
    echo "not ok $N - $1"
    shift
    [[ $# -gt 0 ]] && printf '%s\n' "$@" | sed 's/^/#   /'
}
# tap DESCRIPTION COMMAND...: ok if COMMAND exits 0; its output as diagnostics.
tap() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then
        ok "$desc"
        [[ -n ${NATTER_SELFTEST_VERBOSE:-} && -n $out ]] && printf '%s\n' "$out" | sed 's/^/#   /'
    else
        not_ok "$desc" "$out"
    fi
    return 0
}
fail() { echo "$*"; return 1; }

# --- python3 helper (sockets, STUN/TURN), switches namespaces with setns ------
nt_py() {
    "$PY" - "$@" <<'PYEOF'
import ctypes, hashlib, hmac, os, select, socket, struct, sys, time

CLONE_NEWNET = 0x40000000
MAGIC = 0x2112A442
libc = ctypes.CDLL(None, use_errno=True)

def enter(ns):
    """Switch this (single-threaded) process to network namespace ns.
    Sockets keep the namespace they were created in."""
    fd = os.open("/run/netns/" + ns, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns(%s): %s" % (ns, os.strerror(e)))
    finally:
        os.close(fd)

def udp(ns, host="0.0.0.0", port=0):
    enter(ns)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE
    except OSError:
        pass
    s.bind((host, port))
    return s

def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)

# ---- STUN ----
def attr(t, v):
    return struct.pack("!HH", t, len(v)) + v + b"\0" * ((4 - len(v) % 4) % 4)

def xor_addr(ip, port):
    n = struct.unpack("!I", socket.inet_aton(ip))[0] ^ MAGIC
    return struct.pack("!BBHI", 0, 1, port ^ (MAGIC >> 16), n)

def parse_xor_addr(v):
    port = struct.unpack("!H", v[2:4])[0] ^ (MAGIC >> 16)
    ip = socket.inet_ntoa(struct.pack("!I", struct.unpack("!I", v[4:8])[0] ^ MAGIC))
    return ip, port

def parse(data):
    if len(data) < 20:
        return None
    mtype, length, magic, txid = struct.unpack("!HHI12s", data[:20])
    if magic != MAGIC:
        return None
    attrs, off = {}, 20
    while off + 4 <= 20 + length:
        t, l = struct.unpack("!HH", data[off:off + 4])
        attrs.setdefault(t, data[off + 4:off + 4 + l])
        off += 4 + l + ((4 - l % 4) % 4)
    return mtype, txid, attrs

def message(mtype, attrs=b"", key=None, txid=None):
    txid = txid or os.urandom(12)
    if key is None:
        return struct.pack("!HHI12s", mtype, len(attrs), MAGIC, txid) + attrs, txid
    hdr = struct.pack("!HHI12s", mtype, len(attrs) + 24, MAGIC, txid)
    mac = hmac.new(key, hdr + attrs, hashlib.sha1).digest()
    return hdr + attrs + attr(0x0008, mac), txid

def transact(sock, dst, mtype, attrs=b"", key=None, timeout=0.4, tries=5):
    """Retransmits with a doubling timeout (RFC 5389 7.2.1).  A busy server
    may answer the first copy with success and a retransmitted one with an
    error (TURN's 437 Allocation Mismatch): after a retransmission, an
    error is returned only if no success comes within the timeout."""
    msg, txid = message(mtype, attrs, key)
    error = None
    for attempt in range(tries):
        sock.sendto(msg, dst)
        end = time.monotonic() + timeout * (2 ** attempt)
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                break
            data, src = sock.recvfrom(4096)
            p = parse(data)
            if not p or p[1] != txid:
                continue
            if p[0] & 0x0110 != 0x0110 or attempt == 0:
                return p
            error = p
        if error is not None:
            return error
    raise TimeoutError("no STUN response from %s:%d" % dst)

def error_code(attrs):
    v = attrs.get(0x0009)
    return v[2] * 100 + v[3] if v else None

def cmd_stun(ns, lport, *dsts):
    """One socket in ns, bound to lport; a Binding request to each dst."""
    s = udp(ns, port=int(lport))
    print("local=%d" % s.getsockname()[1])
    for d in dsts:
        mtype, _, attrs = transact(s, hostport(d), 0x0001)
        if mtype != 0x0101 or 0x0020 not in attrs:
            raise RuntimeError("bad binding response %#x from %s" % (mtype, d))
        print("%s %s:%d" % ((d,) + parse_xor_addr(attrs[0x0020])))

# ---- TURN ----
class Turn:
    def __init__(self, sock, server, user, password):
        self.s, self.server, self.user, self.password = sock, server, user, password
        self.realm = self.nonce = self.key = None

    def auth(self):
        return (attr(0x0006, self.user.encode()) + attr(0x0014, self.realm) +
                attr(0x0015, self.nonce))

    def request(self, mtype, attrs):
        if self.key is None:
            r = transact(self.s, self.server, mtype, attrs)
            if r[0] & 0x0110 != 0x0110 or error_code(r[2]) != 401:
                return r
            self.realm, self.nonce = r[2][0x0014], r[2][0x0015]
            self.key = hashlib.md5(b"%s:%s:%s" % (self.user.encode(), self.realm,
                                                   self.password.encode())).digest()
        return transact(self.s, self.server, mtype, attrs + self.auth(), self.key)

    def allocate(self):
        mtype, _, a = self.request(0x0003, attr(0x0019, bytes([17, 0, 0, 0])))
        if mtype != 0x0103:
            raise RuntimeError("Allocate failed: %#x error %s" % (mtype, error_code(a)))
        return parse_xor_addr(a[0x0016]), parse_xor_addr(a[0x0020])

    def permit(self, ip):
        mtype, _, a = self.request(0x0008, attr(0x0012, xor_addr(ip, 0)))
        if mtype != 0x0108:
            raise RuntimeError("CreatePermission failed: %#x error %s" % (mtype, error_code(a)))

    def send(self, peer, data):
        msg, _ = message(0x0016, attr(0x0012, xor_addr(*peer)) + attr(0x0013, data))
        self.s.sendto(msg, self.server)

    def recv(self, timeout=2.0):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.s], [], [], left)[0]:
                raise TimeoutError("no Data indication")
            p = parse(self.s.recvfrom(4096)[0])
            if p and p[0] == 0x0017:
                return parse_xor_addr(p[2][0x0012]), p[2][0x0013]

def cmd_turn(ns_a, ns_b, server, user, password, wan_a, wan_b):
    srv = hostport(server)
    ta = Turn(udp(ns_a), srv, user, password)
    tb = Turn(udp(ns_b), srv, user, password)
    relay_a, mapped_a = ta.allocate()
    relay_b, mapped_b = tb.allocate()
    print("A relayed=%s:%d mapped=%s:%d" % (relay_a + mapped_a))
    print("B relayed=%s:%d mapped=%s:%d" % (relay_b + mapped_b))
    assert relay_a[0] == srv[0] and relay_b[0] == srv[0], "relay not on the TURN server address"
    assert mapped_a[0] == wan_a, "A mapped address is not natA's WAN address"
    assert mapped_b[0] == wan_b, "B mapped address is not natB's WAN address"
    ta.permit(relay_b[0])
    tb.permit(relay_a[0])
    ta.send(relay_b, b"hello from A")
    src, data = tb.recv()
    print("B got %r from %s:%d" % ((data,) + src))
    assert data == b"hello from A" and src == relay_a, "A->B relay failed"
    tb.send(relay_a, b"hello from B")
    src, data = ta.recv()
    print("A got %r from %s:%d" % ((data,) + src))
    assert data == b"hello from B" and src == relay_b, "B->A relay failed"
    bad = Turn(udp(ns_a), srv, user, password + "-wrong")
    try:
        bad.allocate()
        raise AssertionError("Allocate with a wrong password succeeded")
    except RuntimeError as e:
        print("wrong password: %s" % e)
        assert "error 401" in str(e)

def cmd_reach(src_ns, dst_ns, dst_ip, port):
    """Can src_ns send UDP to dst_ip:port (a listener in dst_ns)?"""
    port = int(port)
    rx = udp(dst_ns, port=port)
    ctl = udp(dst_ns)
    ctl.sendto(b"control", (dst_ip, port))       # the listener itself works
    tx = udp(src_ns)
    for i in range(5):
        try:
            tx.sendto(b"probe", (dst_ip, port))
        except OSError as e:                     # e.g. ENETUNREACH
            print("send error: %s" % e)
        time.sleep(0.02)
    got = {b"control": 0, b"probe": 0}
    end = time.monotonic() + 0.5
    while select.select([rx], [], [], max(0, end - time.monotonic()))[0]:
        d = rx.recvfrom(100)[0]
        got[d] = got.get(d, 0) + 1
    print("control=%d probe=%d" % (got[b"control"], got[b"probe"]))

def cmd_probe(src_ns, dst_ns, dst, count):
    """count UDP probes src_ns -> dst (a socket in dst_ns); dst echoes what it
    got.  Prints how many arrived (one way) and how many came back."""
    count = int(count)
    d = hostport(dst)
    rx = udp(dst_ns, d[0], d[1])
    tx = udp(src_ns)
    seen, back = set(), set()
    def drain(wait):
        end = time.monotonic() + wait
        while True:
            r = select.select([rx, tx], [], [], max(0, end - time.monotonic()))[0]
            if not r:
                return
            if rx in r:
                data, src = rx.recvfrom(100)
                seen.add(data)
                rx.sendto(data, src)
            if tx in r:
                back.add(tx.recvfrom(100)[0])
    for i in range(count):
        tx.sendto(b"p%d" % i, d)
        drain(0.001)
    drain(0.5)
    print("sent=%d oneway=%d roundtrip=%d" % (count, len(seen), len(back)))

cmds = {"stun": cmd_stun, "turn": cmd_turn, "reach": cmd_reach, "probe": cmd_probe}
cmds[sys.argv[1]](*sys.argv[2:])
PYEOF
}

ns_left() { ip netns list | grep -qE "^$1-(pub|natA|natB|peerA|peerB)( |\$)"; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$2" | head -n 1; }

# --- tests ---------------------------------------------------------------------
echo "1..$PLAN"
START=$SECONDS

# 1: build
if ! nt_up preserving symmetric; then    # (its diagnostics go to stderr)
    not_ok "topology up (natA preserving, natB symmetric)"
    echo "Bail out! cannot build the topology"
    exit 1
fi
nt_load_check() {
    local r
    for r in "$NATTER_NS_PUBLIC" "$NATTER_NS_NAT_A" "$NATTER_NS_NAT_B" "$NATTER_NS_PEER_A" "$NATTER_NS_PEER_B"; do
        [[ -e /run/netns/$r ]] || fail "namespace $r missing" || return 1
    done
    local pid
    pid=$(<"$NATTER_NETNS_STATE/coturn.pid")
    kill -0 "$pid" || fail "coturn (pid $pid) not running" || return 1
    [[ $(ip netns identify "$pid") == "$NATTER_NS_PUBLIC" ]] || fail "coturn not in $NATTER_NS_PUBLIC" || return 1
    [[ $(ip netns exec "$NATTER_NS_NAT_A" sysctl -n net.ipv4.ip_forward) == 1 ]] || fail "natA does not forward" || return 1
    [[ $(ip netns exec "$NATTER_NS_PEER_A" sysctl -n net.ipv4.ip_forward) == 0 ]] || fail "peerA forwards" || return 1
    echo "tag=$NATTER_NETNS_TAG coturn pid=$pid"
}
tap "topology up as $NATTER_NETNS_TAG: 5 namespaces, coturn running in the public one" nt_load_check

# 2, 3: server-reflexive address via coturn's own STUN client
stun_srflx() {
    local ns=$1 want=$2 priv=$3 out addr
    # turnutils_stunclient also tries an RFC 5780 CHANGE-REQUEST whose answer
    # the NAT filters, and then waits forever: bound it, keep the first answer.
    out=$(timeout 3 ip netns exec "$ns" turnutils_stunclient -p "$NATTER_STUN_PORT" "$NATTER_STUN_HOST" 2>&1)
    addr=$(sed -n 's/.*UDP reflexive addr: *\([0-9.]*:[0-9]*\).*/\1/p' <<<"$out" | head -n 1)
    echo "reflexive address: ${addr:-none}"
    [[ -n $addr ]] || fail "no reflexive address in: $out" || return 1
    [[ ${addr%:*} == "$want" ]] || fail "expected $want (NAT WAN), got ${addr%:*}" || return 1
    [[ ${addr%:*} != "$priv" ]] || fail "private address leaked" || return 1
}
tap "peerA STUN (turnutils_stunclient) -> srflx is natA WAN $NATTER_NAT_A_WAN_ADDR, not $NATTER_PEER_A_ADDR" \
    stun_srflx "$NATTER_NS_PEER_A" "$NATTER_NAT_A_WAN_ADDR" "$NATTER_PEER_A_ADDR"
tap "peerB STUN (turnutils_stunclient) -> srflx is natB WAN $NATTER_NAT_B_WAN_ADDR, not $NATTER_PEER_B_ADDR" \
    stun_srflx "$NATTER_NS_PEER_B" "$NATTER_NAT_B_WAN_ADDR" "$NATTER_PEER_B_ADDR"

# 4, 5: mapping behaviour, measured from one local socket to three server
# endpoints (two addresses, and a second port on the first address).
DSTS=("$NATTER_STUN_HOST:$NATTER_STUN_PORT" "$NATTER_STUN_ALT_HOST:$NATTER_STUN_PORT" "$NATTER_STUN_HOST:$NATTER_STUN_ALT_PORT")
mapping() {
    local ns=$1 kind=$2 wan=$3 lport=$4 out ports nports local_port
    out=$(nt_py stun "$ns" "$lport" "${DSTS[@]}") || fail "$out" || return 1
    echo "$out"
    local_port=$(field local "$out")
    ports=$(awk 'NR > 1 { split($2, a, ":"); print a[2] }' <<<"$out")
    if awk 'NR > 1 { split($2, a, ":"); if (a[1] != "'"$wan"'") bad = 1 } END { exit !bad }' <<<"$out"; then
        fail "mapped address is not $wan"; return 1
    fi
    nports=$(sort -u <<<"$ports" | wc -l)
    if [[ $kind == preserving ]]; then
        ((nports == 1)) || fail "preserving NAT gave $nports different ports" || return 1
        [[ $ports == *"$local_port"* ]] || fail "port not preserved ($local_port)" || return 1
    else
        ((nports == ${#DSTS[@]})) || fail "symmetric NAT gave only $nports distinct ports" || return 1
    fi
}
tap "preserving natA: one socket -> 3 destinations, same mapped port = local port" \
    mapping "$NATTER_NS_PEER_A" preserving "$NATTER_NAT_A_WAN_ADDR" 40001
tap "symmetric natB (masquerade fully-random): one socket -> 3 destinations, 3 different mapped ports" \
    mapping "$NATTER_NS_PEER_B" symmetric "$NATTER_NAT_B_WAN_ADDR" 40002

# 6: coturn's RFC 5780 NAT behaviour discovery agrees
natdisc() {
    local a b
    a=$(timeout 10 ip netns exec "$NATTER_NS_PEER_A" turnutils_natdiscovery -m "$NATTER_STUN_HOST" 2>&1 | grep -E '^NAT with|^NAT ')
    b=$(timeout 10 ip netns exec "$NATTER_NS_PEER_B" turnutils_natdiscovery -m "$NATTER_STUN_HOST" 2>&1 | grep -E '^NAT with|^NAT ')
    echo "peerA: $a"
    echo "peerB: $b"
    [[ $a == *"Endpoint Independent Mapping"* ]] || fail "natA not EIM" || return 1
    [[ $b == *"Address and Port Dependent Mapping"* ]] || fail "natB not APDM" || return 1
}
tap "turnutils_natdiscovery -m: natA endpoint-independent, natB address-and-port-dependent mapping" natdisc

# 7: private addresses are not reachable across NATs
no_reach() {
    local a b
    a=$(nt_py reach "$NATTER_NS_PEER_A" "$NATTER_NS_PEER_B" "$NATTER_PEER_B_ADDR" 7000) || fail "$a" || return 1
    b=$(nt_py reach "$NATTER_NS_PEER_B" "$NATTER_NS_PEER_A" "$NATTER_PEER_A_ADDR" 7000) || fail "$b" || return 1
    echo "peerA -> $NATTER_PEER_B_ADDR: $a"
    echo "peerB -> $NATTER_PEER_A_ADDR: $b"
    [[ $(field control "$a") == 1 && $(field control "$b") == 1 ]] || fail "listener control failed" || return 1
    [[ $(field probe "$a") == 0 && $(field probe "$b") == 0 ]] || fail "private address reachable" || return 1
}
tap "peerA cannot reach peerB's private address (nor the reverse)" no_reach

# 8: TURN with coturn's own client, through natA, relay to relay (-y)
uclient() {
    local out
    out=$(timeout 30 ip netns exec "$NATTER_NS_PEER_A" turnutils_uclient -y -c -n 10 -m 1 -z 5 \
        -u "$NATTER_TURN_USER" -w "$NATTER_TURN_PASSWORD" -p "$NATTER_TURN_PORT" "$NATTER_TURN_HOST" 2>&1)
    grep -E 'tot_send_msgs=|lost packets' <<<"$out" | tail -n 2
    grep -q 'tot_send_msgs=20, tot_recv_msgs=20' <<<"$out" || fail "$out" || return 1
    grep -q 'Total lost packets 0 ' <<<"$out" || fail "lost packets" || return 1
}
tap "TURN allocation through natA (turnutils_uclient -y, long-term credentials): 20/20 relayed" uclient

# 9: TURN from both peers, relayed data between the two relays
turn_py() {
    nt_py turn "$NATTER_NS_PEER_A" "$NATTER_NS_PEER_B" "$NATTER_TURN_HOST:$NATTER_TURN_PORT" \
        "$NATTER_TURN_USER" "$NATTER_TURN_PASSWORD" "$NATTER_NAT_A_WAN_ADDR" "$NATTER_NAT_B_WAN_ADDR"
}
tap "TURN through natA and natB: relay->relay data both ways; wrong password gets 401" turn_py

# 10-14: loss, cut, restore on natA; 200 probes peerA -> public, echoed back
PROBE_DST="$NATTER_STUN_HOST:9000"
probe() { nt_py probe "$NATTER_NS_PEER_A" "$NATTER_NS_PUBLIC" "$PROBE_DST" 200; }
expect() { # expect OUT FIELD LO HI
    local v
    v=$(field "$2" "$1")
    if [[ -z $v ]] || ((v < $3 || v > $4)); then
        fail "$2=$v not in [$3, $4]"
    fi
}
counters() { ip netns exec "$NATTER_NS_NAT_A" nft list table inet natter_impair | grep -E 'drop' | sed 's/^\s*//'; }

base() { local o; o=$(probe) || fail "$o" || return 1; echo "$o"; expect "$o" oneway 200 200 && expect "$o" roundtrip 200 200; }
tap "baseline: 200/200 UDP probes through natA, 200/200 echoed back" base

loss_out() {
    local o
    nt_loss natA 50 out || return 1
    o=$(probe) || fail "$o" || return 1
    echo "$o"
    counters
    expect "$o" oneway 60 140 && expect "$o" roundtrip 60 140
}
tap "loss natA 50 out: about half of 200 probes arrive" loss_out

loss_both() {
    local o
    nt_loss natA 50 both || return 1
    o=$(probe) || fail "$o" || return 1
    echo "$o"
    counters
    expect "$o" oneway 60 140 && expect "$o" roundtrip 20 85
}
tap "loss natA 50 both: about half arrive, about a quarter make the round trip" loss_both

cut_test() {
    local o
    nt_loss natA 0 || return 1
    nt_cut natA || return 1
    o=$(probe) || fail "$o" || return 1
    echo "$o"
    counters
    expect "$o" oneway 0 0 && expect "$o" roundtrip 0 0
}
tap "cut natA: 0 of 200 probes arrive" cut_test

restore_test() {
    local o
    nt_restore natA || return 1
    o=$(probe) || fail "$o" || return 1
    echo "$o"
    counters
    expect "$o" oneway 200 200 && expect "$o" roundtrip 200 200
}
tap "restore natA (and loss 0): 200/200 again" restore_test

# 15: the CLI, in parallel with the library-built topology
cli_test() {
    local out rc tag
    out=$(NATTER_NETNS_OWNER=$$ "$HERE/topology.sh" up symmetric preserving) || fail "up failed: $out" || return 1
    tag=$(sed -n 's/^NATTER_NETNS_TAG=//p' <<<"$out")
    echo "second topology: $tag"
    [[ -n $tag && $tag != "$NATTER_NETNS_TAG" ]] || fail "tag not unique" || return 1
    grep -qx 'NATTER_NAT_A_KIND=symmetric' <<<"$out" || fail "kinds wrong" || return 1
    for v in NS_PEER_A PEER_A_ADDR NAT_A_WAN_ADDR STUN_HOST STUN_PORT TURN_HOST TURN_PORT TURN_USER TURN_PASSWORD TURN_REALM; do
        grep -q "^NATTER_$v=[^ ]" <<<"$out" || fail "NATTER_$v missing" || return 1
    done
    [[ $("$HERE/topology.sh" -t "$tag" exec peerA ip -4 -o addr show dev eth0) == *" 10.0.1.2/24 "* ]] ||
        fail "exec peerA" || return 1
    NATTER_NETNS_TAG=$tag "$HERE/topology.sh" loss natB 10 || fail "loss" || return 1
    NATTER_NETNS_TAG=$tag "$HERE/topology.sh" cut natA || fail "cut" || return 1
    NATTER_NETNS_TAG=$tag "$HERE/topology.sh" restore natA || fail "restore" || return 1
    "$HERE/topology.sh" -t "$tag" loss natX 10 2>/dev/null && fail "bad router accepted" && return 1
    "$HERE/topology.sh" up cone symmetric 2>/dev/null; rc=$?
    ((rc == 2)) || fail "bad kind: rc $rc" || return 1
    "$HERE/topology.sh" down "$tag" || fail "down" || return 1
    "$HERE/topology.sh" down "$tag" || fail "second down" || return 1
    ! ns_left "$tag" && [[ ! -e $(_nt_state_dir "$tag") ]] || fail "leftovers of $tag" || return 1
    # the library-built topology is untouched
    [[ -e /run/netns/$NATTER_NS_PEER_A ]] || fail "first topology damaged" || return 1
}
tap "CLI: up (parallel, unique tag), env vars, exec, loss, cut/restore, down twice" cli_test

# 16: skip logic
skip_test() {
    local rc1 rc2 copy
    if command -v setpriv >/dev/null 2>&1; then
        # As uid/gid 65534 (nobody), from a world-readable copy: the checkout
        # may not be readable by nobody.
        copy=$(mktemp -d "${TMPDIR:-/tmp}/natter-netns-check.XXXXXX") || return 1
        cp "$HERE/topology.sh" "$copy/" && chmod 755 "$copy" && chmod 644 "$copy/topology.sh"
        # CI exports NATTER_NO_SKIP=1: the first check must run without it.
        env -u NATTER_NO_SKIP setpriv --reuid=65534 --regid=65534 --clear-groups bash "$copy/topology.sh" check 2>/dev/null
        rc1=$?
        NATTER_NO_SKIP=1 setpriv --reuid=65534 --regid=65534 --clear-groups bash "$copy/topology.sh" check 2>/dev/null
        rc2=$?
        rm -rf -- "$copy"
        echo "non-root: $rc1, with NATTER_NO_SKIP=1: $rc2"
        ((rc1 == 77)) || fail "non-root check: want 77" || return 1
        ((rc2 == 1)) || fail "non-root check with NATTER_NO_SKIP=1: want 1" || return 1
    else
        echo "setpriv unavailable; checked the root path only"
    fi
    "$HERE/topology.sh" check || fail "root check failed" || return 1
}
tap "check: non-root skips with 77, NATTER_NO_SKIP=1 turns that into 1" skip_test

# 17: teardown
down_test() {
    local pid state=$NATTER_NETNS_STATE tag=$NATTER_NETNS_TAG
    pid=$(<"$state/coturn.pid")
    nt_down || return 1
    nt_down || fail "second nt_down failed" || return 1
    ! ns_left "$tag" || fail "namespaces left" || return 1
    ! _nt_alive "$pid" || fail "coturn $pid still running" || return 1
    [[ ! -e $state ]] || fail "$state left" || return 1
    echo "removed $tag"
}
tap "teardown removes namespaces, coturn and the temp dir; safe twice" down_test

echo "# $((N - FAILS)) passed, $FAILS failed in $((SECONDS - START)) s"
((N == PLAN)) || { echo "# ran $N tests, planned $PLAN"; exit 1; }
((FAILS == 0))
