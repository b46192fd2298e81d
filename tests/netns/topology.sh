#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Natter network-namespace test topology: a sourceable bash library and a CLI.
#
#                     public namespace (bridge br0)
#            coturn on 203.0.113.1:3478 and 203.0.113.2:3478
#               |                                     |
#        wan 203.0.113.11                      wan 203.0.113.12
#          natA (nftables NAT)                   natB (nftables NAT)
#        lan 10.0.1.1                          lan 10.0.2.1
#               |                                     |
#        eth0 10.0.1.2  peerA                  eth0 10.0.2.2  peerB
#
# Every namespace is created by this script and named "<tag>-<role>"; nothing
# touches the root namespace's interfaces, routes or firewall, and no
# namespace has a link to the root namespace, so no packet can leave the
# machine.  See README.md in this directory for the CLI and the variables.
#
# Library use:   source tests/netns/topology.sh
#                nt_check || exit $?          # 77 = skip (1 if NATTER_NO_SKIP=1)
#                trap nt_down EXIT
#                nt_up preserving symmetric   # exports the NATTER_* variables
#                nt_exec peerA some-command ...
#                nt_loss natA 30; nt_cut natB; nt_restore natB
#                nt_down
# CLI use:       topology.sh help

# ---------------------------------------------------------------------------
# Address plan.  Identical for every run: each run has its own namespaces.
NT_PUB_PLEN=24
NT_STUN_IP=203.0.113.1
NT_STUN_ALT_IP=203.0.113.2
NT_STUN_PORT=3478
NT_STUN_ALT_PORT=3479           # coturn's RFC 5780 alternative port (port+1)
NT_NAT_A_WAN=203.0.113.11
NT_NAT_B_WAN=203.0.113.12
NT_NAT_A_LAN=10.0.1.1
NT_NAT_B_LAN=10.0.2.1
NT_PEER_A=10.0.1.2
NT_PEER_B=10.0.2.2
NT_LAN_PLEN=24
NT_TURN_REALM=natter.test
NT_TURN_USER=natter
NT_TURN_PASSWORD=natter-test-password
NT_ROLES=(pub natA natB peerA peerB)

NT_SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

_nt_err() { echo "topology.sh: $*" >&2; }
_nt_log() { [[ -n ${NATTER_NETNS_VERBOSE:-} ]] && echo "topology.sh: $*" >&2; return 0; }

_nt_prefix() {
    local p=${NATTER_NETNS_PREFIX:-natter}
    if [[ ! $p =~ ^[A-Za-z0-9][A-Za-z0-9_.]{0,23}$ ]]; then
        _nt_err "bad NATTER_NETNS_PREFIX '$p' (letters, digits, _ and . only)"
        return 1
    fi
    printf '%s\n' "$p"
}

_nt_tmpdir() { printf '%s\n' "${NATTER_NETNS_TMPDIR:-${TMPDIR:-/tmp}}"; }
_nt_state_dir() { printf '%s/%s.d\n' "$(_nt_tmpdir)" "$1"; }
_nt_ns_exists() { [[ -e /run/netns/$1 ]]; }

# ---------------------------------------------------------------------------
# Skipping.  nt_check returns 0 when a topology can be built here; otherwise
# it prints the reason and returns 77 (meson's skip code), or 1 when
# NATTER_NO_SKIP=1.
nt_check() {
    local reason=""
    if [[ $(id -u) != 0 ]]; then
        reason="not root (network namespaces need CAP_SYS_ADMIN/CAP_NET_ADMIN)"
    elif ! command -v ip >/dev/null 2>&1; then
        reason="'ip' (iproute2) not found"
    elif ! command -v nft >/dev/null 2>&1; then
        reason="'nft' (nftables) not found"
    elif ! command -v turnserver >/dev/null 2>&1; then
        reason="'turnserver' not found (apt-get install coturn)"
    elif ! command -v ss >/dev/null 2>&1; then
        reason="'ss' (iproute2) not found"
    else
        local probe
        probe="$(_nt_prefix)-probe-$$-$RANDOM" || return 1
        if ! ip netns add "$probe" 2>/dev/null; then
            reason="'ip netns add' does not work here"
        else
            if ! ip netns exec "$probe" nft -f - >/dev/null 2>&1 <<'EOF'
table ip natter_probe {
    chain post { type nat hook postrouting priority srcnat; masquerade fully-random; }
    chain pre { type filter hook prerouting priority -300; numgen random mod 100 < 50 drop; }
}
EOF
            then
                reason="nftables NAT/numgen not usable inside a network namespace"
            fi
            ip netns del "$probe" 2>/dev/null
        fi
    fi
    [[ -z $reason ]] && return 0
    if [[ ${NATTER_NO_SKIP:-0} == 1 ]]; then
        echo "FAIL: netns topology unavailable: $reason (NATTER_NO_SKIP=1)" >&2
        return 1
    fi
    echo "SKIP: netns topology unavailable: $reason" >&2
    return 77
}

# ---------------------------------------------------------------------------
# Name resolution.
_nt_cur_tag() {
    local tag=${1:-${NATTER_NETNS_TAG:-}}
    if [[ -z $tag ]]; then
        _nt_err "no topology selected: set NATTER_NETNS_TAG (eval the output of 'topology.sh up') or pass -t TAG"
        return 1
    fi
    if [[ ! $tag =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]]; then
        _nt_err "bad tag '$tag'"
        return 1
    fi
    printf '%s\n' "$tag"
}

# _nt_ns ROLE [TAG] -> namespace name.  ROLE is pub|public|natA|natB|peerA|
# peerB (a few spellings accepted) or an existing full namespace name.
_nt_ns() {
    local role=$1 tag r
    case $role in
        pub|public) r=pub ;;
        natA|nata|nat_a|NAT_A|routerA) r=natA ;;
        natB|natb|nat_b|NAT_B|routerB) r=natB ;;
        peerA|peera|peer_a|PEER_A|A) r=peerA ;;
        peerB|peerb|peer_b|PEER_B|B) r=peerB ;;
        *)
            if _nt_ns_exists "$role" && [[ $role == "$(_nt_prefix)"-* ]]; then
                printf '%s\n' "$role"; return 0
            fi
            _nt_err "unknown namespace role '$role' (pub, natA, natB, peerA, peerB)"
            return 1 ;;
    esac
    tag=$(_nt_cur_tag "${2:-}") || return 1
    printf '%s-%s\n' "$tag" "$r"
}

_nt_router_ns() {
    local ns
    ns=$(_nt_ns "$1" "${2:-}") || return 1
    if [[ $ns != *-natA && $ns != *-natB ]]; then
        _nt_err "'$1' is not a router (natA or natB)"
        return 1
    fi
    if ! _nt_ns_exists "$ns"; then
        _nt_err "namespace $ns does not exist (topology down?)"
        return 1
    fi
    printf '%s\n' "$ns"
}

# ---------------------------------------------------------------------------
# NAT kinds.
#   preserving: plain `masquerade`.  Linux conntrack keeps the source port
#     when the resulting tuple is unique, and the mapping does not depend on
#     the destination: endpoint-independent, port-preserving mapping.
#     (Filtering is address- and port-dependent, as conntrack only lets in
#     replies from the address:port that was sent to: a "port-restricted
#     cone".)
#   symmetric: `masquerade fully-random`.  With NF_NAT_RANGE_PROTO_RANDOM_ALL
#     the kernel never keeps the original port and picks a new random port
#     for every new conntrack entry, i.e. for every destination address:port
#     (endpoint-dependent mapping).  `masquerade random` behaves the same on
#     current kernels; fully-random is used because it is random on every
#     kernel.  Verified by selftest.sh (test 3) on each run.
_nt_kind() {
    case ${1:-} in
        preserving|symmetric) printf '%s\n' "$1" ;;
        *) _nt_err "NAT kind must be 'preserving' or 'symmetric', not '${1:-}'"; return 2 ;;
    esac
}

_nt_masq_stmt() {
    case $1 in
        preserving) echo "masquerade" ;;
        symmetric) echo "masquerade fully-random" ;;
    esac
}

# ---------------------------------------------------------------------------
# Building.
_nt_ns_base() {
    local ns=$1
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # IPv4-only topology: no IPv6 link-local candidates that can never work.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
}

_nt_router_rules() {
    local ns=$1 kind=$2
    ip netns exec "$ns" nft -f - <<EOF
table ip natter_nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" $(_nt_masq_stmt "$kind")
    }
}
table inet natter_fw {
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        ct state invalid drop
        iifname "lan" oifname "wan" ip daddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 } drop
        iifname "lan" oifname "wan" accept
    }
    chain input {
        type filter hook input priority filter; policy accept;
        iifname "wan" ct state established,related accept
        iifname "wan" drop
    }
}
table inet natter_impair {
    chain cut {
        type filter hook prerouting priority -310; policy accept;
    }
    chain loss {
        type filter hook prerouting priority -300; policy accept;
    }
}
EOF
}

# _nt_build TAG STATE KIND_A KIND_B   (runs under set -e in a subshell)
_nt_build() {
    local tag=$1 state=$2 kind_a=$3 kind_b=$4
    local pub=$tag-pub side nat peer wan lan plan kind peer_ip r

    for r in "${NT_ROLES[@]}"; do _nt_ns_base "$tag-$r"; done

    # Public segment: a bridge in the public namespace carrying coturn's
    # two addresses; each router's WAN veth is a bridge port.
    ip -n "$pub" link add br0 type bridge
    ip -n "$pub" link set br0 up
    ip -n "$pub" addr add "$NT_STUN_IP/$NT_PUB_PLEN" dev br0
    ip -n "$pub" addr add "$NT_STUN_ALT_IP/$NT_PUB_PLEN" dev br0

    for side in A B; do
        nat=$tag-nat$side peer=$tag-peer$side
        if [[ $side == A ]]; then
            plan="$NT_NAT_A_WAN $NT_NAT_A_LAN $NT_PEER_A" kind=$kind_a
        else
            plan="$NT_NAT_B_WAN $NT_NAT_B_LAN $NT_PEER_B" kind=$kind_b
        fi
        read -r wan lan peer_ip <<<"$plan"

        ip -n "$nat" link add wan type veth peer name "wan$side" netns "$pub"
        ip -n "$pub" link set "wan$side" master br0
        ip -n "$pub" link set "wan$side" up
        ip -n "$nat" addr add "$wan/$NT_PUB_PLEN" dev wan
        ip -n "$nat" link set wan up

        ip -n "$nat" link add lan type veth peer name eth0 netns "$peer"
        ip -n "$nat" addr add "$lan/$NT_LAN_PLEN" dev lan
        ip -n "$nat" link set lan up
        ip -n "$peer" addr add "$peer_ip/$NT_LAN_PLEN" dev eth0
        ip -n "$peer" link set eth0 up
        ip -n "$peer" route add default via "$lan"

        # "The Internet" is the public segment; the public namespace does not
        # forward, so anything else dies there.
        ip -n "$nat" route add default via "$NT_STUN_IP"
        ip netns exec "$nat" sysctl -qw net.ipv4.ip_forward=1
        _nt_router_rules "$nat" "$kind"
    done

    # coturn, from the template, in the foreground of a background job.
    sed -e "s|@STUN_IP@|$NT_STUN_IP|g" \
        -e "s|@STUN_ALT_IP@|$NT_STUN_ALT_IP|g" \
        -e "s|@PORT@|$NT_STUN_PORT|g" \
        -e "s|@REALM@|$NT_TURN_REALM|g" \
        -e "s|@USER@|$NT_TURN_USER|g" \
        -e "s|@PASSWORD@|$NT_TURN_PASSWORD|g" \
        -e "s|@STATE@|$state|g" \
        "$NT_SRCDIR/coturn.conf" >"$state/turnserver.conf"
    ip netns exec "$pub" turnserver -c "$state/turnserver.conf" \
        </dev/null >"$state/turnserver.stdout" 2>&1 &
    local pid=$!
    echo "$pid" >"$state/coturn.pid"

    local i listeners
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            _nt_err "turnserver exited during start-up; log:"
            tail -n 20 "$state/turnserver.log" "$state/turnserver.stdout" >&2 2>/dev/null || true
            return 1
        fi
        listeners=$(ip netns exec "$pub" ss -Hlnu "sport = :$NT_STUN_PORT" 2>/dev/null || true)
        if [[ $listeners == *"$NT_STUN_IP:$NT_STUN_PORT"* && $listeners == *"$NT_STUN_ALT_IP:$NT_STUN_PORT"* ]]; then
            return 0
        fi
        sleep 0.1
    done
    _nt_err "turnserver did not start listening within 10 s"
    return 1
}

_nt_write_env() {
    local tag=$1 state=$2 kind_a=$3 kind_b=$4
    {
        echo "NATTER_NETNS_TAG=$tag"
        echo "NATTER_NETNS_STATE=$state"
        echo "NATTER_NS_PUBLIC=$tag-pub"
        echo "NATTER_NS_NAT_A=$tag-natA"
        echo "NATTER_NS_NAT_B=$tag-natB"
        echo "NATTER_NS_PEER_A=$tag-peerA"
        echo "NATTER_NS_PEER_B=$tag-peerB"
        echo "NATTER_NAT_A_KIND=$kind_a"
        echo "NATTER_NAT_B_KIND=$kind_b"
        echo "NATTER_PEER_A_ADDR=$NT_PEER_A"
        echo "NATTER_PEER_B_ADDR=$NT_PEER_B"
        echo "NATTER_NAT_A_LAN_ADDR=$NT_NAT_A_LAN"
        echo "NATTER_NAT_B_LAN_ADDR=$NT_NAT_B_LAN"
        echo "NATTER_NAT_A_WAN_ADDR=$NT_NAT_A_WAN"
        echo "NATTER_NAT_B_WAN_ADDR=$NT_NAT_B_WAN"
        echo "NATTER_STUN_HOST=$NT_STUN_IP"
        echo "NATTER_STUN_PORT=$NT_STUN_PORT"
        echo "NATTER_STUN_ALT_HOST=$NT_STUN_ALT_IP"
        echo "NATTER_STUN_ALT_PORT=$NT_STUN_ALT_PORT"
        echo "NATTER_TURN_HOST=$NT_STUN_IP"
        echo "NATTER_TURN_PORT=$NT_STUN_PORT"
        echo "NATTER_TURN_USER=$NT_TURN_USER"
        echo "NATTER_TURN_PASSWORD=$NT_TURN_PASSWORD"
        echo "NATTER_TURN_REALM=$NT_TURN_REALM"
        echo "NATTER_COTURN_LOG=$state/turnserver.log"
    } >"$state/env.tmp"
    mv "$state/env.tmp" "$state/env"
}

# _nt_load ENVFILE: set and export the NATTER_* variables it holds.
_nt_load() {
    local k v
    while IFS='=' read -r k v; do
        [[ $k =~ ^NATTER_[A-Z0-9_]+$ ]] && export "$k=$v"
    done <"$1"
    return 0
}

# nt_up KIND_A KIND_B: build a topology; export NATTER_* (see README.md).
# Returns 77 (or 1 with NATTER_NO_SKIP=1) when this machine cannot, 2 on
# bad arguments, 1 on failure (after tearing down what it made).
nt_up() {
    local kind_a kind_b prefix tag state n=0 rc
    kind_a=$(_nt_kind "${1:-}") || return 2
    kind_b=$(_nt_kind "${2:-}") || return 2
    nt_check || return $?
    prefix=$(_nt_prefix) || return 2

    # Unique tag: prefix-PID, plus -N if leftovers of a dead run with the same
    # PID are still around.  mkdir is the atomic claim.
    while :; do
        tag=$prefix-$$
        ((n > 0)) && tag=$tag-$n
        state=$(_nt_state_dir "$tag")
        n=$((n + 1))
        local busy=0 r
        for r in "${NT_ROLES[@]}"; do _nt_ns_exists "$tag-$r" && busy=1; done
        ((busy)) && continue
        mkdir -m 700 "$state" 2>/dev/null && break
        ((n > 1000)) && { _nt_err "cannot create a state dir under $(_nt_tmpdir)"; return 1; }
    done
    echo "${NATTER_NETNS_OWNER:-$$}" >"$state/owner"
    _nt_write_env "$tag" "$state" "$kind_a" "$kind_b"

    _nt_log "building $tag ($kind_a / $kind_b) in $state"
    ( set -euo pipefail; _nt_build "$tag" "$state" "$kind_a" "$kind_b" ) >&2
    rc=$?
    if ((rc != 0)); then
        _nt_err "building topology $tag failed; tearing it down"
        nt_down "$tag"
        return 1
    fi
    _nt_load "$state/env"
}

# _nt_alive PID: the process exists and is not a zombie.
_nt_alive() {
    local st
    st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [[ -n $st && $st != Z && $st != X ]]
}

# nt_down [TAG]: remove everything a topology made: processes running inside
# its namespaces (coturn first), the namespaces (their veths and bridge go with
# them) and the temp dir.  Safe to call twice, and for a half-built topology.
nt_down() {
    local tag state r ns pid i
    local -a pids
    tag=${1:-${NATTER_NETNS_TAG:-}}
    [[ -z $tag ]] && return 0
    tag=$(_nt_cur_tag "$tag") || return 1
    state=$(_nt_state_dir "$tag")

    # coturn by its recorded pid (it runs in the public namespace, so the
    # loop below would find it too), waiting until it has exited.
    if [[ -r $state/coturn.pid ]]; then
        pid=$(<"$state/coturn.pid")
        if [[ $pid =~ ^[0-9]+$ ]] && [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */turnserver ]]; then
            kill -TERM "$pid" 2>/dev/null
            for ((i = 0; i < 30; i++)); do
                _nt_alive "$pid" || break
                sleep 0.1
            done
            _nt_alive "$pid" && kill -KILL "$pid" 2>/dev/null
        fi
    fi
    for r in "${NT_ROLES[@]}"; do
        ns=$tag-$r
        _nt_ns_exists "$ns" || continue
        # Only processes inside this run's own namespace, by pid.
        mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
        if ((${#pids[@]})); then
            kill -TERM "${pids[@]}" 2>/dev/null
            for ((i = 0; i < 30; i++)); do
                mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
                ((${#pids[@]})) || break
                sleep 0.1
            done
            ((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null
        fi
        ip netns del "$ns" 2>/dev/null || _nt_err "could not delete namespace $ns"
    done
    if [[ -d $state && $state == */"$tag".d ]]; then
        rm -rf -- "$state"
    fi
    return 0
}

# nt_loss ROUTER PCT [both|out|in]: drop PCT % of the packets entering the
# router from its LAN ("out", towards the Internet), from its WAN ("in") or
# both (default).  Replaces any previous loss setting; PCT 0 removes it.
nt_loss() {
    local ns pct=${2:-} dir=${3:-both} ifs
    ns=$(_nt_router_ns "${1:-}") || return 1
    if [[ ! $pct =~ ^[0-9]+$ ]] || ((pct > 100)); then
        _nt_err "loss percentage must be 0..100, not '$pct'"
        return 2
    fi
    case $dir in
        both) ifs='lan wan' ;;
        out) ifs='lan' ;;
        in) ifs='wan' ;;
        *) _nt_err "direction must be both, out or in"; return 2 ;;
    esac
    {
        echo "flush chain inet natter_impair loss"
        if ((pct > 0)); then
            local i
            for i in $ifs; do
                echo "add rule inet natter_impair loss iifname \"$i\" numgen random mod 100 < $pct counter drop"
            done
        fi
    } | ip netns exec "$ns" nft -f -
}

# nt_cut ROUTER: drop every packet entering the router from either side.
nt_cut() {
    local ns
    ns=$(_nt_router_ns "${1:-}") || return 1
    ip netns exec "$ns" nft -f - <<'EOF'
flush chain inet natter_impair cut
add rule inet natter_impair cut iifname { "lan", "wan" } counter drop
EOF
}

# nt_restore ROUTER: undo nt_cut (loss set with nt_loss stays; use loss 0).
nt_restore() {
    local ns
    ns=$(_nt_router_ns "${1:-}") || return 1
    ip netns exec "$ns" nft flush chain inet natter_impair cut
}

# nt_exec ROLE CMD...: run CMD inside a namespace of the current topology.
nt_exec() {
    local ns
    ns=$(_nt_ns "${1:-}") || return 1
    shift
    ip netns exec "$ns" "$@"
}

# nt_list: print the tags of the topologies present (namespaces or state).
nt_list() {
    local prefix
    prefix=$(_nt_prefix) || return 1
    {
        ip netns list 2>/dev/null | awk '{print $1}' |
            sed -nE "s/^($prefix-[0-9]+(-[0-9]+)?)-(pub|natA|natB|peerA|peerB)\$/\1/p"
        local d
        for d in "$(_nt_tmpdir)/$prefix"-*.d; do
            [[ -d $d ]] || continue
            d=${d##*/}
            d=${d%.d}
            [[ $d =~ ^$prefix-[0-9]+(-[0-9]+)?$ ]] && echo "$d"
        done
    } | sort -u
}

# nt_gc: tear down topologies whose owner process is gone (crashed runs).
nt_gc() {
    local tag owner state
    while read -r tag; do
        [[ -z $tag ]] && continue
        state=$(_nt_state_dir "$tag")
        owner=$(cat "$state/owner" 2>/dev/null || true)
        if [[ $owner =~ ^[0-9]+$ ]] && kill -0 "$owner" 2>/dev/null; then
            continue
        fi
        echo "topology.sh: removing stale topology $tag" >&2
        nt_down "$tag"
    done < <(nt_list)
}

# ---------------------------------------------------------------------------
# CLI.
_nt_usage() {
    cat <<'EOF'
usage: topology.sh [-t TAG] COMMAND [ARGS]

  check                      exit 0 if a topology can be built, else 77 (skip)
                             or 1 with NATTER_NO_SKIP=1, with the reason
  up KIND_A KIND_B           build a topology (KIND: preserving | symmetric)
                             and print NATTER_*=value lines on stdout
  down [TAG]                 tear it down (safe to repeat)
  env                        print the NATTER_*=value lines again
  loss ROUTER PCT [DIR]      drop PCT % of packets entering ROUTER (natA|natB)
                             DIR: both (default) | out (from LAN) | in (from WAN)
                             PCT 0 removes the loss rules
  cut ROUTER                 drop everything entering ROUTER
  restore ROUTER             undo cut
  exec NS CMD [ARGS...]      run CMD in NS (pub|natA|natB|peerA|peerB)
  list                       list topologies present on this machine
  gc                         remove topologies whose owner process is dead

The topology is selected by -t TAG or $NATTER_NETNS_TAG (from 'up').
EOF
}

_nt_main() {
    local tag=""
    if [[ ${1:-} == -t ]]; then
        tag=${2:-}
        shift 2 || { _nt_usage >&2; return 2; }
    fi
    [[ -n $tag ]] && export NATTER_NETNS_TAG=$tag
    local cmd=${1:-help}
    shift || true
    case $cmd in
        check) nt_check ;;
        up)
            (($# == 2)) || { _nt_usage >&2; return 2; }
            # The caller (e.g. a C test) owns the topology, for 'gc'.
            export NATTER_NETNS_OWNER=${NATTER_NETNS_OWNER:-$PPID}
            nt_up "$1" "$2" || return $?
            cat "$NATTER_NETNS_STATE/env" ;;
        down) nt_down "${1:-}" ;;
        env)
            tag=$(_nt_cur_tag) || return 1
            cat "$(_nt_state_dir "$tag")/env" ;;
        loss) (($# >= 2)) || { _nt_usage >&2; return 2; }; nt_loss "$@" ;;
        cut) (($# == 1)) || { _nt_usage >&2; return 2; }; nt_cut "$1" ;;
        restore) (($# == 1)) || { _nt_usage >&2; return 2; }; nt_restore "$1" ;;
        exec)
            (($# >= 2)) || { _nt_usage >&2; return 2; }
            local ns
            ns=$(_nt_ns "$1") || return 1
            shift
            exec ip netns exec "$ns" "$@" ;;
        list) nt_list ;;
        gc) nt_gc ;;
        help|-h|--help) _nt_usage ;;
        *) _nt_usage >&2; return 2 ;;
    esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    _nt_main "$@"
    exit $?
fi
