#!/usr/bin/env bash
# A local Cluster without the launcher: one `cluster server` and N `cluster worker` processes on
# 127.0.0.1, the same programs and flags one would start by hand on separate machines.
#
#   deploy/local.sh [WORKERS] [MODE] [extra server flags...]
#   deploy/local.sh 2 sync --model mlp --data embedded --epochs 1
#   PORT=5001 LOG_DIR=/tmp/run deploy/local.sh 4 ssp:2 --model lenet
#
# WORKERS defaults to 2, MODE to sync, PORT to 5000; logs go to LOG_DIR (default: a new temporary
# directory), and the server's output is also shown here. The server and the workers share the
# cluster token in CLUSTER_TOKEN: the caller's if set, otherwise a new random one for this run.
# Every child is stopped on exit or Ctrl+C.
# Exit status: 0 when the server and every worker exit 0; otherwise the first failure's status
# (2 for bad flags, 130 after Ctrl+C).
set -uo pipefail

workers=${1:-2}
mode=${2:-sync}
shift $(($# < 2 ? $# : 2))
port=${PORT:-5000}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if ! [[ $workers =~ ^[0-9]+$ ]] || ((workers < 1 || workers > 256)); then
    echo "deploy/local.sh: WORKERS '$workers' is not allowed: use a count from 1 to 256" >&2
    exit 2
fi
if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    echo "deploy/local.sh: PORT '$port' is not allowed: use 1 to 65535" >&2
    exit 2
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "deploy/local.sh: port $port on 127.0.0.1 is already in use: set PORT to a free one" >&2
    exit 2
fi

logs=${LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/cluster-local.XXXXXX")}
mkdir -p "$logs"

echo "building src/Launcher (Release)..."
if ! dotnet build "$root/src/Launcher" -c Release -nologo >"$logs/build.log" 2>&1; then
    echo "the build failed; $logs/build.log ends:" >&2
    tail -n 20 "$logs/build.log" >&2
    exit 1
fi
cluster=(dotnet "$root/src/Launcher/bin/Release/net10.0/cluster.dll")

# Every call carries the token; a worker of another run that reaches this port is refused.
CLUSTER_TOKEN=${CLUSTER_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
export CLUSTER_TOKEN

names=()
pids=()

stop_all() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    # NOTE: give each process 5 s to leave the cluster cleanly, then kill what is left.
    for _ in $(seq 50); do
        local alive=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        ((alive)) || return 0
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null
    done
}
trap stop_all EXIT
trap 'echo "stopping: every process of the cluster is being stopped" >&2; exit 130' INT TERM

"${cluster[@]}" server --host 127.0.0.1 --port "$port" --workers "$workers" --mode "$mode" "$@" \
    > >(tee -i "$logs/server.log") 2>&1 &
names+=(server)
pids+=($!)

# Start the workers only once this server listens, so none joins another process on the port.
for _ in $(seq 600); do
    grep -q "parameter server listening" "$logs/server.log" 2>/dev/null && break
    if ! kill -0 "${pids[0]}" 2>/dev/null; then
        wait "${pids[0]}"
        status=$?
        echo "the parameter server exited with code $status before listening; its log is $logs/server.log" >&2
        exit "$status"
    fi
    sleep 0.1
done
if ! grep -q "parameter server listening" "$logs/server.log"; then
    echo "the parameter server did not start listening within 60 s; its log is $logs/server.log" >&2
    exit 1
fi

# The server waits for WORKERS plus its backup workers (--backup-workers B among the extra flags,
# which it has checked by now); each worker asks for its rank, so worker-i reads shard i.
backups=0
extra=("$@")
for ((k = 0; k < ${#extra[@]}; k++)); do
    case ${extra[k]} in
        --backup-workers) backups=${extra[k + 1]:-0} ;;
        --backup-workers=*) backups=${extra[k]#*=} ;;
    esac
done
for ((i = 0; i < workers + backups; i++)); do
    "${cluster[@]}" worker --server "http://127.0.0.1:$port" --name "worker-$i" --rank "$i" >"$logs/worker-$i.log" 2>&1 &
    names+=("worker-$i")
    pids+=($!)
done
echo "local cluster: server http://127.0.0.1:$port, $((workers + backups)) worker(s), mode $mode; logs in $logs"

# Wait for every process; the first failure stops the others, since a sync run would wait for the
# missing worker forever.
declare -A live=()
for i in "${!pids[@]}"; do
    live[${pids[$i]}]=$i
done
result=0
while ((${#live[@]} > 0)); do
    done_pid=
    wait -n -p done_pid "${!live[@]}"
    status=$?
    [[ -n $done_pid ]] || break
    i=${live[$done_pid]}
    unset "live[$done_pid]"
    if ((status != 0 && result == 0)); then
        echo "${names[$i]} exited with code $status; $logs/${names[$i]}.log ends:" >&2
        tail -n 5 "$logs/${names[$i]}.log" >&2
        result=$status
        stop_all
    fi
done
if ((result == 0)); then
    echo "local cluster finished: the server and $((workers + backups)) worker(s) exited cleanly; logs in $logs"
fi
exit "$result"
