#!/usr/bin/env bash
# Makes data/fashion-mnist-subset/: the first 10,000 training and the first 2,000 test images and
# labels of Fashion-MNIST, as the four standard gzip'd IDX files. They are embedded in
# Cluster.Shared.dll as the default data, so that `cluster train` runs on a fresh machine that has
# no copy of the full set.
#
# Usage: data/make-subset.sh [SOURCE_DIR]
#   SOURCE_DIR holds the full set as train-images-idx3-ubyte.gz etc.
#   (default /usr/share/datasets/fashion-mnist).
#
# The output is byte-for-byte reproducible: the first N records are copied unchanged, the header
# is rewritten with the new count, and gzip -n stores no file name or time stamp.
set -euo pipefail

source_dir="${1:-/usr/share/datasets/fashion-mnist}"
out_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/fashion-mnist-subset"
train_count=10000
test_count=2000

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

die() {
    echo "make-subset: $*" >&2
    exit 1
}

# Prints the 4-byte big-endian int32 at byte offset $2 of file $1, as a decimal number.
read_be32() {
    local bytes
    read -r -a bytes <<<"$(od -An -tu1 -j "$2" -N 4 "$1")"
    [[ ${#bytes[@]} -eq 4 ]] || die "$1: too short to read a 32-bit size at offset $2"
    echo $(((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]))
}

# Writes $1 to stdout as a 4-byte big-endian int32.
write_be32() {
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' \
        $((($1 >> 24) & 255)) $((($1 >> 16) & 255)) $((($1 >> 8) & 255)) $(($1 & 255)))"
}

# Copies the first $2 records of the gzip'd IDX file named $1 (unsigned-byte elements) to $out_dir/$1.
subset() {
    local name="$1" keep="$2"
    local input="$source_dir/$name" raw="$work/${name%.gz}"
    [[ -f "$input" ]] || die "$input does not exist"
    gzip -dc "$input" >"$raw"

    local magic rank type
    read -r -a magic <<<"$(od -An -tu1 -N 4 "$raw")"
    [[ ${#magic[@]} -eq 4 && ${magic[0]} -eq 0 && ${magic[1]} -eq 0 ]] ||
        die "$input: not an IDX file (expected magic 00 00 <type> <rank>)"
    type=${magic[2]}
    rank=${magic[3]}
    [[ $type -eq 8 ]] || die "$input: element type $type is not 8 (unsigned byte)"
    [[ $rank -ge 1 && $rank -le 4 ]] || die "$input: rank $rank is not 1..4"

    local header=$((4 + 4 * rank)) count record=1 i
    count="$(read_be32 "$raw" 4)"
    for ((i = 1; i < rank; i++)); do
        record=$((record * $(read_be32 "$raw" $((4 + 4 * i)))))
    done
    [[ $count -ge $keep ]] || die "$input: holds $count records, fewer than the $keep wanted"
    local size
    size=$(stat -c %s "$raw")
    [[ $size -eq $((header + count * record)) ]] ||
        die "$input: $size bytes, expected $((header + count * record)) for $count records of $record bytes"

    # Magic, the new count, then the rest of the header and the first records unchanged.
    {
        head -c 4 "$raw"
        write_be32 "$keep"
        head -c $((header + keep * record)) "$raw" | tail -c +9
    } >"$work/subset"
    size=$(stat -c %s "$work/subset")
    [[ $size -eq $((header + keep * record)) ]] ||
        die "$name: wrote $size bytes, expected $((header + keep * record))"
    gzip -n -9 -c "$work/subset" >"$out_dir/$name"
    echo "$out_dir/$name: $keep of $count records, $(stat -c %s "$out_dir/$name") bytes"
}

mkdir -p "$out_dir"
subset train-images-idx3-ubyte.gz "$train_count"
subset train-labels-idx1-ubyte.gz "$train_count"
subset t10k-images-idx3-ubyte.gz "$test_count"
subset t10k-labels-idx1-ubyte.gz "$test_count"
