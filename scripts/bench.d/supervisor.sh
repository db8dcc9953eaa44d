# Sourced by scripts/bench (uses $bin, $work, ratio). The supervisor: how fast a dead
# jail is replaced, and what the daemon costs while 100 jails idle.
sup_specs="$work/sup-specs"
sup=(--root "$work/sup-root" --specs "$sup_specs")
mkdir -p "$sup_specs/Images" "$sup_specs/Jails"
echo 'binaries = ["/bin/sh", "/bin/sleep"]' > "$sup_specs/Images/sh.toml"
cat > "$sup_specs/Jails/crash.toml" <<EOT
image = "sh"
command = ["/bin/sh", "-c", "sleep 0.2; exit 1"]
restart = "always"
restart_delay = 0.001
restart_max_delay = 0.001
restart_limit = 1000
EOT
"$bin/jailctl" daemon "${sup[@]}" 2>/dev/null & dpid=$!
sup_cleanup() { kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null; "$bin/jailctl" down --all --timeout 0.2 "${sup[@]}" >/dev/null 2>&1 || true; }
for _ in $(seq 100); do [ -S "$work/sup-root/supervisor.sock" ] && break; sleep 0.05; done
"$bin/jailctl" up "${sup[@]}" crash >/dev/null
sleep 8
"$bin/jailctl" down "${sup[@]}" crash >/dev/null
# exit events carry the monitor's time of death; restart events the moment the new
# process runs.
lat=$("$bin/jailctl" events --json -n 1000 "${sup[@]}" crash | python3 -c '
import json, sys
ev = [json.loads(l) for l in sys.stdin if l.strip()]
ev = ev if isinstance(ev[0], dict) else ev[0]
ev.sort(key=lambda e: e["time"])
d, last = [], None
for e in ev:
    if e["kind"] == "exit": last = e["time"]
    elif e["kind"] == "restart" and last is not None: d.append((e["time"] - last) * 1000); last = None
d.sort()
print(f"{d[len(d)//2]:.1f} {len(d)}" if d else "n/a 0")')
read -r latms latn <<<"$lat"
printf '%-58s %8s ms  (%s restarts; target < 50 + delay 1)\n' "death of a jail -> its replacement running (median)" "$latms" "$latn"

rm "$sup_specs/Jails/crash.toml"
for i in $(seq -w 100); do
  # sleep as a pid namespace's init ignores SIGTERM: a short stop_timeout, then SIGKILL.
  printf 'image = "sh"\ncommand = ["/bin/sleep", "3600"]\nrestart = "always"\nstop_timeout = 0.2\n' > "$sup_specs/Jails/idle$i.toml"
done
"$bin/jailctl" up --all "${sup[@]}" >/dev/null
# The daemon learns of them (reconcile), then sits idle.
kill "$dpid"; wait "$dpid" 2>/dev/null || true
"$bin/jailctl" daemon "${sup[@]}" 2>/dev/null & dpid=$!
sleep 2
cpu0=$(awk '{print $14 + $15}' "/proc/$dpid/stat"); sleep 10; cpu1=$(awk '{print $14 + $15}' "/proc/$dpid/stat")
rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$dpid/status")
hz=$(getconf CLK_TCK)
printf '%-58s %8s MB  (target < 50)\n' "daemon RSS with 100 idle jails" "$rss"
printf '%-58s %8s %%   (target ~0)\n' "daemon CPU over 10 s idle with 100 jails" "$(python3 -c "print(f'{($cpu1 - $cpu0) / $hz / 10 * 100:.2f}')")"
sup_cleanup
