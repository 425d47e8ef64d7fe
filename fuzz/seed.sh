#!/usr/bin/env bash
# Builds the seed corpora fuzz/corpus/{frames,node_info,events} from the hand-checked vectors in
# tests/vectors (hex of one body, or of a whole framed stream). Run from anywhere; the corpus
# directories are not committed. Existing files in them are kept (libFuzzer adds its own).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
vectors="$here/../tests/vectors"
corpus="$here/corpus"
mkdir -p "$corpus/frames" "$corpus/node_info" "$corpus/events"

# hex2bin FILE: the bytes the hex text in FILE stands for, on stdout.
hex2bin() {
    if command -v xxd >/dev/null; then
        xxd -r -p "$1"
    else
        python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(open(sys.argv[1]).read()))' "$1"
    fi
}

# seed DIR NAME BYTE FILE: one seed, the byte (a number) then the body in FILE.
seed() {
    { printf "\\x$(printf %02x "$3")"; hex2bin "$4"; } > "$corpus/$1/$2"
}

for f in "$vectors"/*.hex; do
    name="$(basename "$f" .hex)"
    case "$name" in
        stream*)
            # frames: control byte = read size (0 = all at once) | 0x80 for the 512-byte ceiling.
            for control in 0 1 3 7 64 128 135; do
                seed frames "$name.c$control" "$control" "$f"
            done
            ;;
        node_information*)
            hex2bin "$f" > "$corpus/node_info/$name"
            # A lone handshake as a stream too: its u32 LE length, then the body.
            len="$(hex2bin "$f" | wc -c)"
            { printf '\x00'
              printf "\\x$(printf %02x $((len & 255)))\\x$(printf %02x $(((len >> 8) & 255)))\\x00\\x00"
              hex2bin "$f"; } > "$corpus/frames/$name"
            ;;
        *)
            # events: selector bit 0 = protocol version, bits 1-3 = core-count index (0 is C = 2,
            # 7 is unknown C). A vector named _v0 / _v1 is for that version only.
            case "$name" in
                *_v0) versions="0" ;;
                *_v1) versions="1" ;;
                *) versions="0 1" ;;
            esac
            for v in $versions; do
                for cores in 0 7; do
                    seed events "$name.v$v.c$cores" $((v | cores << 1)) "$f"
                done
            done
            ;;
    esac
done

for dir in frames node_info events; do
    echo "$dir: $(ls "$corpus/$dir" | wc -l) seeds"
done
