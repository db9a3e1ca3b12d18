#!/usr/bin/env bash
# --log-format json: every line the relay writes is one JSON object with
# ts (RFC 3339, UTC), level and msg first, also when room names and close
# reasons are hostile (quotes and fake fields, ESC sequences, raw high
# bytes, newlines); the hostile values come back exactly as sent (bytes
# above 0x7e as \u00NN); numbers stay numbers. The counters at exit (one
# debug line longer than any other) are one object too, every key once.
. "$(dirname "$0")/lib.sh"

start_relay --log-format json --log-level debug
run() { # url-path [wtclient flags...]
  local path=$1
  shift
  "$CLIENT" --url "$URL$path" --cert-hash "$HASH" --timeout 5 "$@" >>"$TMP/client.out" 2>&1 || true
}
run '/x" level=error msg="forged'
run '/q\"uote\\'
run '/plain' --close-reason $'bye\n{"level":"error","msg":"forged"}'
run '/esc' --close-reason $'\x1b[2J"\\ level=error\xff'
run "/hi"$'\xff\xfe'
stop_relay
python3 - "$TMP/relay.err" <<'PY' || fail "JSON log check failed"
import json, re, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")
assert lines[-1] == b"", "last line not terminated"
seen = {}
n = 0
exits = []
def unique(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    return dict(pairs)
for raw in lines[:-1]:
    o = json.loads(raw.decode("utf-8"), object_pairs_hook=unique)  # valid UTF-8 and JSON, keys once
    assert isinstance(o, dict), raw
    keys = list(o)
    assert keys[:3] == ["ts", "level", "msg"], keys[:3]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["ts"]), o["ts"]
    assert o["level"] in ("error", "warn", "info", "debug"), o["level"]
    assert not (o["level"] == "error" and "forged" in raw.decode()), raw
    for k, v in o.items():
        seen.setdefault(k, set()).add(v if isinstance(v, (str, int, float, bool)) else str(v))
    n += 1
    if o["msg"] == "counters at exit":
        exits.append(o)
assert len(exits) == 1, len(exits)
ctr = exits[0]
assert ctr["level"] == "debug" and ctr["workers"] >= 1, ctr
assert all(isinstance(v, int) for k, v in ctr.items() if k not in ("ts", "level", "msg")), ctr
assert len(ctr) > 300 and ctr["h3_sessions_opened"] >= 4 and "lease_written" in ctr, len(ctr)
rooms = seen.get("room", set())
for want in ['/x" level=error msg="forged', '/q\\"uote\\\\', "/hi\u00ff\u00fe"]:
    assert want in rooms, (want, sorted(rooms)[:20])
reasons = seen.get("reason", set())
assert 'bye\n{"level":"error","msg":"forged"}' in reasons, sorted(reasons)
assert '\x1b[2J"\\ level=error\u00ff' in reasons, sorted(reasons)
ports = seen.get("port", set())
assert any(isinstance(p, int) for p in ports), ports
print(f"{n} lines, every one a JSON object; the counters at exit: {len(ctr) - 3} keys")
PY
pass "JSON log lines parse, hostile room names and close reasons intact, ts/level/msg first, the counters at exit one object"
